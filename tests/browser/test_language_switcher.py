from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect


@pytest.fixture
def context_options(context_options):
    # An English browser: the site is French first and ignores Accept-Language on purpose.
    return {**context_options, "locale": "en-US"}


def test_switching_to_english_sticks_while_navigating(
    page: Page, sign_in, make_user, make_formation
):
    lea = make_user("lea")
    formation = make_formation(title="Atelier", learners=(lea,))
    sign_in(lea)
    expect(page.locator("html")).to_have_attribute("lang", "fr")

    page.get_by_label("Langue").select_option("en")
    page.get_by_role("button", name="Changer").click()

    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("My training sessions")

    page.get_by_role("link", name=formation.title).click()
    expect(page.get_by_role("link", name="Download (.ics)")).to_be_visible()
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Settings"
    ).click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    # The switcher in the header, and the profile form, where the choice was saved.
    expect(page.get_by_role("banner").get_by_label("Language")).to_have_value("en")
    expect(page.get_by_role("main").get_by_label("Language")).to_have_value("en")


def test_language_chosen_before_signing_in_is_kept_after(page: Page, make_user):
    make_user("lea")
    page.goto("/accounts/login/")

    page.get_by_label("Langue").select_option("en")
    page.get_by_role("button", name="Changer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")

    page.get_by_label("Username").fill("lea")
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My training sessions")
