"""A learner connects Google and Outlook from the settings page, through the sandbox's consent
pages, as they would in the demo."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from calendars.models import CalendarIntegration


@pytest.mark.parametrize(
    ("provider", "button", "account", "approve"),
    [
        ("google", "Connecter Google Agenda", "camille.durand@gmail.test", "Allow"),
        ("outlook", "Connecter Outlook", "camille.durand@contoso.test", "Accept"),
    ],
)
def test_learner_connects_a_calendar_through_the_consent_page(
    page, sign_in, make_user, sandbox_settings, provider, button, account, approve
):
    demo = make_user("demo", password="demo")
    sign_in(demo, "demo")
    page.goto("/settings/calendars/")

    page.get_by_role("button", name=button).click()
    expect(page).to_have_url(re.compile("^" + re.escape(sandbox_settings.http_url)))
    page.get_by_label(account).check()
    page.get_by_role("button", name=approve).click()

    expect(page).to_have_url(re.compile("/settings/calendars/$"))
    card = page.locator(f"#integration-{provider}")
    expect(card).to_contain_text("Connecté")
    expect(card).to_contain_text(account)
    # The page's messages (its other live region, the feed's copy status, is empty).
    expect(page.locator(".messages")).to_contain_text("est connecté")
    assert CalendarIntegration.objects.get(user=demo, provider=provider).account_email == account


def test_disconnecting_says_what_will_happen_then_what_was_done(
    page, sign_in, make_user, sandbox_settings, make_formation
):
    from calendars.sync.exporting import integration_export
    from tests.calendars.connect_helpers import connect

    demo = make_user("demo", password="demo")
    integration = connect(sandbox_settings, demo, "google")
    make_formation(learners=(demo,))
    integration_export(integration=integration)
    sign_in(demo, "demo")
    page.goto("/settings/calendars/")

    page.locator("#integration-google").get_by_role("link", name="Déconnecter…").click()

    expect(page.get_by_role("heading", name="Déconnecter Google Agenda ?")).to_be_visible()
    expect(page.get_by_text("La formation ajoutée à votre agenda Google Agenda")).to_be_visible()
    assert CalendarIntegration.objects.filter(pk=integration.pk).exists()  # not yet
    page.get_by_label("les y laisser (elles ne seront plus tenues à jour)").check()
    page.get_by_role("button", name="Déconnecter Google Agenda").click()

    expect(page).to_have_url(re.compile("/settings/calendars/$"))
    expect(page.locator(".messages")).to_contain_text(
        "1 formation reste dans votre agenda, sans plus être tenue à jour"
    )
    assert not CalendarIntegration.objects.filter(pk=integration.pk).exists()
