"""The week and day views in a real browser: overlapping events side by side, sizes by
duration, the keyboard's way through the events, the details in place (and as a page without
JavaScript), and a phone's width."""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from calendars.models import CalendarEvent

# The calendars' own factories, shared with their page tests.
from tests.calendars.conftest import make_calendar, make_event  # noqa: F401

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
DAY = date(2027, 4, 8)  # a Thursday
WEEK = f"/calendar/?view=week&date={DAY}"
PHONE = {"viewport": {"width": 390, "height": 844}}
NO_SCRIPT = {"java_script_enabled": False}


def at(hour: float, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=PARIS) + timedelta(hours=hour)


@pytest.fixture
def week(make_user, make_calendar, make_event, make_formation) -> dict[str, Any]:  # noqa: F811
    """A learner's week: two overlapping meetings on Thursday, a formation on Tuesday, a
    three-day fair, a night over midnight."""
    lea = make_user("lea")
    outlook = make_calendar(lea, provider="outlook", name="Travail")
    google = make_calendar(lea, name="Perso")
    return {
        "user": lea,
        "long": make_event(outlook, title="Réunion longue", start=at(9), hours=2,
                           location="Bureau 4", html_link="https://outlook.example.com/e/1"),
        "short": make_event(google, title="Appel court", start=at(10), hours=0.75,
                            response="tentative"),
        "formation": make_formation(title="Excel", start=at(9, DAY - timedelta(days=2)),
                                    learners=(lea,), location="Salle Lumière"),
        "fair": make_event(google, title="Salon", all_day=DAY - timedelta(days=1), days=3),
        "night": make_event(google, title="Nuit", start=at(22, DAY + timedelta(days=1)), hours=5),
    }  # fmt: skip


def event_link(page: Page, event: Any) -> Any:
    kind = "formation" if event.__class__.__name__ == "Formation" else "event"
    return page.locator(f'a[data-key="{kind}-{event.pk}"]')


def test_overlapping_events_are_side_by_side_and_longer_ones_taller(page, sign_in, week):
    sign_in(week["user"])
    page.goto(WEEK)

    long, short = (event_link(page, week[k]).bounding_box() for k in ("long", "short"))
    assert long and short
    # Side by side: no horizontal overlap, in the same band of hours (10:00-10:45 is within
    # 09:00-11:00), in the same day's column.
    assert long["x"] + long["width"] <= short["x"] + 0.5
    assert short["y"] < long["y"] + long["height"] and long["y"] < short["y"]
    assert short["y"] + short["height"] <= long["y"] + long["height"] + 0.5
    assert long["height"] > 2 * short["height"]
    # Two hours are twice the height of one: the grid's scale (09:00 to 11:00).
    labels = page.locator(".tg-hour-labels li")
    nine, eleven = labels.nth(9).bounding_box(), labels.nth(11).bounding_box()
    assert long["height"] == pytest.approx(eleven["y"] - nine["y"], abs=3)
    assert long["y"] == pytest.approx(nine["y"], abs=3)

    # The fair is one bar across its three columns; Thursday's column is one of them.
    fair = event_link(page, week["fair"]).bounding_box()
    columns = [page.locator(".tg-column").nth(n).bounding_box() for n in range(7)]
    assert fair["x"] >= columns[2]["x"] and fair["x"] < columns[2]["x"] + 5
    assert fair["x"] + fair["width"] == pytest.approx(columns[4]["x"] + columns[4]["width"], abs=6)


def test_tab_reaches_the_events_day_by_day_in_time_order_and_enter_opens_the_details(
    page, sign_in, week
):
    sign_in(week["user"])
    page.goto(WEEK)
    page.get_by_role("link", name="Semaine suivante").focus()

    stops = []
    for _ in range(40):
        page.keyboard.press("Tab")
        stop = page.evaluate("""() => {
            const el = document.activeElement;
            if (el.dataset.key) return el.dataset.key;
            if (el.closest('.tg-day-heading')) return el.textContent.trim();
            return el.closest('.time-grid') ? '?' : null;
        }""")
        if stop is None and stops:
            break
        if stop is not None:
            stops.append(stop)

    keys = {k: f"{'formation' if k == 'formation' else 'event'}-{week[k].pk}" for k in week
            if k != "user"}  # fmt: skip
    assert stops == [
        "Lundi 5 avril", "Mardi 6 avril", keys["formation"],
        "Mercredi 7 avril", keys["fair"], "Jeudi 8 avril", keys["long"], keys["short"],
        "Vendredi 9 avril", keys["night"], "Samedi 10 avril", "Dimanche 11 avril",
    ]  # fmt: skip

    link = event_link(page, week["long"])
    link.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Réunion longue")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", name="Réunion longue")).to_be_focused()
    assert page.url.endswith(WEEK)  # in place: no page change
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(link).to_be_focused()


def test_clicking_an_event_shows_its_details_in_place_and_escape_closes_them(page, sign_in, week):
    sign_in(week["user"])
    page.goto(WEEK)

    link = event_link(page, week["long"])
    link.click()

    dialog = page.get_by_role("dialog", name="Réunion longue")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Jeudi 8 avril 2027, de 09:00 à 11:00")
    expect(dialog).to_contain_text("Bureau 4")
    expect(dialog).to_contain_text("Travail")
    expect(dialog.get_by_role("link", name="Ouvrir dans Outlook")).to_have_attribute(
        "href", "https://outlook.example.com/e/1"
    )
    assert page.url.endswith(WEEK)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(link).to_be_focused()

    # Another one, closed with its button: a formation, with a link to its page.
    event_link(page, week["formation"]).click()
    dialog = page.get_by_role("dialog", name="Excel")
    expect(dialog).to_contain_text("Salle Lumière")
    expect(dialog.get_by_role("link", name="Voir la formation")).to_have_attribute(
        "href", week["formation"].get_absolute_url()
    )
    dialog.get_by_role("button", name="Fermer").click()
    expect(dialog).to_be_hidden()
    expect(event_link(page, week["formation"])).to_be_focused()


@pytest.mark.parametrize("context_options", [NO_SCRIPT], indirect=True)
def test_without_javascript_an_event_opens_its_details_page_and_comes_back(page, sign_in, week):
    sign_in(week["user"])
    page.goto(WEEK)

    event_link(page, week["long"]).click()

    expect(page).to_have_url(re.compile(rf"/calendar/event/event-{week['long'].pk}/\?view=week"))
    expect(page.get_by_role("heading", level=1, name="Réunion longue")).to_be_visible()
    expect(page.get_by_text("Bureau 4")).to_be_visible()
    page.get_by_role("link", name="Retour au calendrier").click()
    assert page.url.endswith(WEEK)


@pytest.mark.parametrize("context_options", [PHONE], indirect=True)
def test_on_a_phone_the_week_scrolls_within_its_frame_and_the_page_does_not(page, sign_in, week):
    sign_in(week["user"])
    for view in ("week", "day", "month", "agenda"):
        page.goto(f"/calendar/?view={view}&date={DAY}")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], view

    page.goto(WEEK)
    frame = page.locator(".time-grid-scroll")
    assert frame.evaluate("el => el.scrollWidth > el.clientWidth")
    label = page.locator(".tg-hour-labels li").nth(9)
    before = label.bounding_box()["x"]
    frame.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    # The hours stay in view while the days slide under them; Thursday's events come in sight.
    assert label.bounding_box()["x"] == pytest.approx(before, abs=1)
    event_link(page, week["night"]).scroll_into_view_if_needed()
    expect(event_link(page, week["night"])).to_be_in_viewport()


def test_the_current_time_line_is_on_todays_column(page, sign_in, make_user):
    sign_in(make_user("lea"))
    page.goto("/calendar/?view=week")

    today = page.locator(".tg-day.is-today")
    expect(today.locator(".tg-day-heading")).to_have_attribute("aria-current", "date")
    line = today.locator(".now-line").bounding_box()
    column = today.locator(".tg-column").bounding_box()
    assert (
        column["x"] <= line["x"] and line["x"] + line["width"] <= column["x"] + column["width"] + 1
    )
    assert column["y"] <= line["y"] <= column["y"] + column["height"]
    assert page.locator(".now-line").count() == 1


def _in_frame(page: Page, selector: str) -> bool:
    """Whether the element is within the grid's scrolling frame, below its sticky headings."""
    return page.evaluate(
        """(selector) => {
          const frame = document.querySelector(".time-grid-scroll").getBoundingClientRect();
          const box = document.querySelector(selector).getBoundingClientRect();
          return box.top >= frame.top && box.bottom <= frame.bottom;
        }""",
        selector,
    )


def test_the_grid_starts_at_the_morning_or_at_an_earlier_first_event(page, sign_in, week):
    sign_in(week["user"])
    page.goto(WEEK)
    expect(event_link(page, week["long"])).to_be_attached()
    assert _in_frame(page, ".tg-hour-labels li:nth-child(9)")  # 08:00
    assert not _in_frame(page, ".tg-hour-labels li:nth-child(3)")  # 02:00: above, scrolled past

    early = CalendarEvent.objects.create(
        calendar=week["long"].calendar, external_id="early", title="Train", start=at(5), end=at(6)
    )
    page.goto(WEEK)
    assert _in_frame(page, f'a[data-key="event-{early.pk}"]')


@pytest.mark.parametrize("view", ["month", "agenda"])
def test_in_the_month_and_agenda_an_event_opens_its_details_in_place_too(page, sign_in, week, view):
    sign_in(week["user"])
    page.goto(f"/calendar/?view={view}&date={DAY}")

    page.get_by_role("link", name="Réunion longue").click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Bureau 4")
    assert page.url.endswith(f"?view={view}&date={DAY}")
