"""Disconnecting asks first, in a dialog with JavaScript and on a page without it, says what
will happen, and after it what was done."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from calendars.models import CalendarIntegration
from calendars.sync.exporting import integration_export
from tests.calendars.calendar_helpers import events_of
from tests.calendars.connect_helpers import connect


@pytest.fixture
def connected(make_user, make_formation, sandbox_settings):
    lea = make_user("lea")
    integration = connect(sandbox_settings, lea, "google")
    formation = make_formation(learners=(lea,))
    integration_export(integration=integration)
    account = sandbox_settings.store.account(integration.account_email)
    remote = account.calendars[integration.calendars.get(is_export_target=True).external_id]
    assert len(events_of(remote, formation, "google")) == 1
    return lea, remote, formation


def test_with_javascript_disconnecting_asks_in_a_dialog(page, sign_in, connected):
    lea, remote, formation = connected
    sign_in(lea)
    page.goto(reverse("settings_calendars"))
    link = page.get_by_role("link", name="Déconnecter…")

    link.click()

    dialog = page.get_by_role("dialog", name="Déconnecter Google Agenda ?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("La formation ajoutée à votre agenda Google Agenda")
    assert page.url.endswith(reverse("settings_calendars"))  # still on the page
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(link).to_be_focused()
    assert CalendarIntegration.objects.filter(user=lea).exists()

    link.click()
    dialog.get_by_label("les retirer de mon agenda").check()
    dialog.get_by_role("button", name="Déconnecter Google Agenda").click()

    expect(page.locator(".messages")).to_contain_text("1 formation est retirée de votre agenda")
    assert not CalendarIntegration.objects.filter(user=lea).exists()
    assert events_of(remote, formation, "google") == []


@pytest.mark.parametrize(
    "context_options",
    [{"locale": "fr-FR", "viewport": {"width": 1280, "height": 800}, "java_script_enabled": False}],
)
def test_without_javascript_disconnecting_asks_on_a_page(page, sign_in, connected, context_options):
    lea, remote, formation = connected
    sign_in(lea)
    page.goto(reverse("settings_calendars"))

    page.get_by_role("link", name="Déconnecter…").click()

    assert page.url.endswith(reverse("settings_calendar_disconnect", args=["google"]))
    page.get_by_label("les y laisser").check()
    page.get_by_role("button", name="Déconnecter Google Agenda").click()
    expect(page.locator(".messages")).to_contain_text("1 formation reste dans votre agenda")
    assert len(events_of(remote, formation, "google")) == 1
