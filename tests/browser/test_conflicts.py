"""Conflicts in a real browser: on the week view, the formation and the event over it side by
side, each with its visible marker; on the formation's page, "Je m'en occupe" and back."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

# The calendars' own factories, shared with their page tests.
from tests.calendars.conftest import make_calendar, make_event  # noqa: F401

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NO_SCRIPT = {"java_script_enabled": False}
CONFLICT_RGB = "rgb(138, 60, 0)"  # --conflict
# Pixels between the end of an item's conflict badge and the end of its content box.
ROOM_AFTER_BADGE = """(item) => {
  const badge = item.querySelector(".badge-conflict").getBoundingClientRect();
  const style = getComputedStyle(item);
  const end = item.getBoundingClientRect().right - parseFloat(style.paddingRight)
    - parseFloat(style.borderRightWidth);
  return end - badge.right;
}"""


def _nine_on_a_tuesday() -> datetime:
    """9:00 in Paris on a Tuesday two to three weeks ahead: a formation still to come."""
    today = timezone.localdate()
    day = today + timedelta(days=14 + (1 - today.weekday()) % 7)
    return datetime.combine(day, time(9), tzinfo=PARIS)


@pytest.fixture
def clash(make_user, make_formation, make_calendar, make_event) -> dict[str, Any]:  # noqa: F811
    """Léa's formation, Tuesday 9:00-12:00, and her dentist's appointment at 10:00 for half an
    hour (a short block: one line, cut with an ellipsis when too long); a meeting elsewhere
    that week clashes with nothing."""
    nine = _nine_on_a_tuesday()
    lea = make_user("lea")
    google = make_calendar(lea, name="Perso")
    return {
        "user": lea,
        "formation": make_formation(title="Excel", start=nine, hours=3, learners=(lea,)),
        "event": make_event(google, title="Dentiste au centre-ville",
                            start=nine + timedelta(hours=1), hours=0.5),
        "other": make_event(google, title="Réunion", start=nine + timedelta(days=1)),
        "week": f"/calendar/?view=week&date={nine:%Y-%m-%d}",
    }  # fmt: skip


def link(page: Page, key: str) -> Any:
    return page.locator(f'a[data-key="{key}"]')


def test_the_week_shows_the_formation_and_the_event_side_by_side_each_marked(page, sign_in, clash):
    sign_in(clash["user"])
    page.goto(clash["week"])

    formation = link(page, f"formation-{clash['formation'].pk}")
    event = link(page, f"event-{clash['event'].pk}")
    left, right = formation.bounding_box(), event.bounding_box()
    assert left and right
    assert left["x"] + left["width"] <= right["x"] + 0.5  # side by side, no overlap
    for item in (formation, event):
        badge = item.locator(".badge-conflict")
        expect(badge).to_be_visible()
        expect(badge).to_have_text("⚠ Conflit")
        # Whole inside the block: not cut off by its edge (a short event's one line is cut
        # with an ellipsis after it).
        assert item.evaluate(ROOM_AFTER_BADGE) >= 0
        # A frame all round in the conflict's colour, besides the source's left edge.
        assert CONFLICT_RGB in item.evaluate("el => getComputedStyle(el).boxShadow")

    expect(formation).to_contain_text("en conflit avec l'événement Dentiste au centre-ville")
    expect(event).to_contain_text("en conflit avec la formation Excel")

    other = link(page, f"event-{clash['other'].pk}")
    expect(other.locator(".badge-conflict")).to_have_count(0)
    assert CONFLICT_RGB not in other.evaluate("el => getComputedStyle(el).boxShadow")


@pytest.mark.parametrize("context_options", [{}, NO_SCRIPT], indirect=True, ids=["js", "no-js"])
def test_je_m_en_occupe_on_the_formation_page_dismisses_it_until_asked_again(
    page, sign_in, clash, context_options
):
    sign_in(clash["user"])
    page.goto(clash["formation"].get_absolute_url())
    conflicts = page.locator("#conflicts")
    expect(conflicts).to_contain_text("Conflit avec 1 événement de votre agenda (Google Agenda)")
    expect(conflicts).to_contain_text("Dentiste au centre-ville")

    conflicts.get_by_role("button", name="Je m'en occupe").click()

    expect(page.locator(".messages")).to_contain_text("C'est noté")
    expect(conflicts).not_to_contain_text("Conflit avec")
    expect(conflicts.locator(".badge-dismissed")).to_have_text("Écarté")
    page.goto(clash["week"])
    expect(link(page, f"formation-{clash['formation'].pk}")).to_be_visible()
    expect(page.locator(".badge-conflict")).to_have_count(0)

    page.goto(clash["formation"].get_absolute_url())
    page.locator("#conflicts").get_by_role("button", name="Signaler à nouveau").click()

    expect(page.locator(".messages")).to_contain_text("Ce conflit vous est de nouveau signalé.")
    expect(page.locator("#conflicts")).to_contain_text("Conflit avec 1 événement")
