"""The small tools of the pages, in Chromium: the time-zone search, the feed address's copy
button, showing or hiding a calendar from the calendar page, and the phone's menu."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from calendars.models import Calendar, CalendarEvent, CalendarIntegration

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def test_the_time_zone_search_narrows_the_list_and_the_choice_is_saved(page, sign_in, make_user):
    sign_in(make_user("lea"))
    page.goto(reverse("settings"))
    zones = page.get_by_role("combobox", name="Fuseau horaire")
    expect(zones.locator("optgroup").first).to_have_attribute("label", "Fuseaux courants")

    page.get_by_label("Rechercher un fuseau").fill("montr")

    expect(zones.locator('option[value="America/Montreal"]')).not_to_have_attribute("hidden", "")
    assert zones.locator('option[value="Europe/Paris"]').evaluate("o => o.hidden")
    assert zones.locator("optgroup:not([hidden]) option:not([hidden])").count() >= 1
    expect(zones).to_have_value("America/Montreal")  # the first match, chosen as typed
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator(".site-footer")).to_contain_text("America/Montreal")


@pytest.fixture
def context_options():
    return {
        "locale": "fr-FR",
        "timezone_id": "Europe/Paris",
        "viewport": {"width": 1280, "height": 800},
        "permissions": ["clipboard-read", "clipboard-write"],
    }


def test_the_feed_address_is_copied_with_one_click(page, sign_in, make_user):
    sign_in(make_user("lea"))
    page.goto(reverse("settings_calendars"))
    address = page.get_by_label("Adresse de votre calendrier").input_value()

    page.get_by_role("button", name="Copier l'adresse").click()

    expect(page.locator("#calendar-feed-copy-status")).to_have_text(
        "Adresse copiée : collez-la dans votre programme de calendrier."
    )
    assert page.evaluate("navigator.clipboard.readText()") == address


def test_a_calendar_unticked_on_the_page_disappears_at_once_and_stays_hidden(
    page, sign_in, make_user
):
    lea = make_user("lea")
    integration = CalendarIntegration.objects.create(user=lea, provider="google",
                                                     account_email="lea@example.com")  # fmt: skip
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    for name in ("Travail", "Maison"):
        calendar = Calendar.objects.create(integration=integration, external_id=name, name=name,
                                           import_enabled=True)  # fmt: skip
        CalendarEvent.objects.create(
            calendar=calendar,
            external_id=f"ev-{name}",
            title=f"Chez {name}",
            start=start,
            end=start.replace(hour=10),
        )
    sign_in(lea)
    page.goto(f"{reverse('calendars:calendar')}?view=week&date=2027-04-08")
    expect(page.get_by_text("Chez Maison")).to_be_visible()
    # With JavaScript the form goes as soon as a box changes: no button to press.
    expect(page.get_by_role("button", name="Afficher les calendriers cochés")).to_be_hidden()

    page.get_by_role("checkbox", name="Maison").uncheck()

    expect(page.get_by_text("Chez Maison")).to_have_count(0)
    expect(page.get_by_text("Chez Travail")).to_be_visible()
    assert page.url.endswith("?view=week&date=2027-04-08")
    page.reload()
    expect(page.get_by_role("checkbox", name="Maison")).not_to_be_checked()
    expect(page.get_by_text("Chez Maison")).to_have_count(0)


@pytest.mark.parametrize(
    "context_options",
    [{"locale": "fr-FR", "viewport": {"width": 390, "height": 844}, "is_mobile": True}],
)
def test_on_a_phone_the_navigation_folds_into_a_menu(page, sign_in, make_user, context_options):
    sign_in(make_user("lea", first_name="Léa", last_name="Martin"))
    navigation = page.get_by_role("navigation", name="Navigation principale")
    expect(navigation).to_be_hidden()
    assert page.locator(".site-header").bounding_box()["height"] <= 64

    page.get_by_text("Menu", exact=True).click()

    expect(navigation).to_be_visible()
    navigation.get_by_role("link", name="Calendrier").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Calendrier")
    expect(navigation).to_be_hidden()  # closed again on the next page
