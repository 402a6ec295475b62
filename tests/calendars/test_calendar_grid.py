"""The week and day views' hour grid: where items are drawn, what each one says, the order a
keyboard reaches them, and the line at the current time."""

from __future__ import annotations

import html
import re
import zoneinfo
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
URL = reverse("calendars:calendar")


def page(client: Any, **query: str) -> str:
    response = client.get(URL, query)
    assert response.status_code == 200
    return response.content.decode()


def grid_links(text: str) -> list[tuple[str, str]]:
    """The grid's event links in the page's order: (href, what a screen reader says of it:
    its text without what is hidden from assistive technologies)."""
    links = re.findall(r'<a class="entry tg-event[^"]*" href="([^"]+)"[^>]*>(.*?)</a>', text, re.S)
    return [(html.unescape(href), spoken(content)) for href, content in links]


def spoken(fragment: str) -> str:
    fragment = re.sub(r'<(\w+)[^>]*aria-hidden="true"[^>]*>.*?</\1>', "", fragment, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


def block_styles(text: str) -> dict[str, str]:
    """Each timed block's title → its style."""
    blocks = re.findall(r'<li class="tg-block[^"]*" style="([^"]+)">.*?'
                        r'<span class="entry-title">([^<]+)</span>', text, re.S)  # fmt: skip
    return {html.unescape(title): style for style, title in blocks}


def detail(key: str, view: str, day: str) -> str:
    return f"{reverse('calendars:event', args=[key])}?view={view}&date={day}"


def test_overlapping_events_are_side_by_side_and_placed_by_their_time(
    learner_client, learner, make_calendar, make_event
):
    calendar = make_calendar(learner)
    make_event(calendar, title="A", start=datetime(2027, 4, 8, 9, tzinfo=PARIS), hours=1.5)
    make_event(calendar, title="B", start=datetime(2027, 4, 8, 10, tzinfo=PARIS), hours=1)
    make_event(calendar, title="C", start=datetime(2027, 4, 8, 14, tzinfo=PARIS), hours=0.25)

    for view in ("week", "day"):
        styles = block_styles(page(learner_client, view=view, date="2027-04-08"))

        assert styles == {
            "A": "--top: 37.5%; --height: 6.25%; --left: 0%; --width: 50%",
            "B": "--top: 41.6667%; --height: 4.1667%; --left: 50%; --width: 50%",
            # A quarter of an hour, drawn half an hour tall.
            "C": "--top: 58.3333%; --height: 2.0833%; --left: 0%; --width: 100%",
        }


def test_every_event_is_a_link_to_its_details_in_reading_order_saying_all_it_shows(
    learner_client, learner, make_formation, make_calendar, make_event
):
    google = make_calendar(learner, name="Perso")
    outlook = make_calendar(learner, provider="outlook", name="Travail")
    salon = make_event(google, title="Salon", all_day=date(2027, 4, 6), days=3)
    late = make_event(outlook, title="Point", start=datetime(2027, 4, 6, 14, tzinfo=PARIS),
                      location="Bureau 4", response="tentative")  # fmt: skip
    early = make_formation(title="Excel", start=datetime(2027, 4, 6, 9, tzinfo=PARIS),
                           learners=(learner,), status="cancelled")  # fmt: skip
    free = make_event(google, title="Libre", start=datetime(2027, 4, 7, 8, tzinfo=PARIS),
                      busy=False)  # fmt: skip
    night = make_event(google, title="Nuit", start=datetime(2027, 4, 5, 22, tzinfo=PARIS),
                       hours=4)  # fmt: skip

    text = page(learner_client, view="week", date="2027-04-08")

    assert grid_links(text) == [
        # Monday: the night over midnight, a bar from 22:00.
        (detail(f"event-{night.pk}", "week", "2027-04-08"),
         "Google Agenda : du lundi 5 avril 2027 à 22:00 au mardi 6 avril 2027 à 02:00 — Nuit"),
        # Tuesday: its bar, then its hours in order.
        (detail(f"event-{salon.pk}", "week", "2027-04-08"),
         "Google Agenda : du mardi 6 avril 2027 au jeudi 8 avril 2027, toute la journée — Salon"),
        (detail(f"formation-{early.pk}", "week", "2027-04-08"),
         "Formation : mardi 6 avril 2027, de 09:00 à 12:00 — Excel Annulée"),
        (detail(f"event-{late.pk}", "week", "2027-04-08"),
         "Outlook : mardi 6 avril 2027, de 14:00 à 15:00 — Point , Lieu : Bureau 4 Peut-être"),
        # Wednesday.
        (detail(f"event-{free.pk}", "week", "2027-04-08"),
         "Google Agenda : mercredi 7 avril 2027, de 08:00 à 09:00 — Libre Disponible"),
    ]  # fmt: skip
    # The night is not also drawn in Monday's or Tuesday's hours; the time shown on its bar.
    assert "Nuit" not in "".join(block_styles(text))
    assert re.search(r'<span class="entry-when" aria-hidden="true">22:00</span>\s*'
                     r'<span class="entry-title">Nuit</span>', text)  # fmt: skip


def test_a_bar_running_past_the_days_shown_says_so(
    learner_client, learner, make_calendar, make_event
):
    make_event(make_calendar(learner), title="Congés", all_day=date(2027, 4, 1), days=20)

    week = page(learner_client, view="week", date="2027-04-08")
    day = page(learner_client, view="day", date="2027-04-08")

    assert '<li class="tg-bar is-continued continues" style="--span: 7; --lane: 0">' in week
    assert '<li class="tg-bar is-continued continues" style="--span: 1; --lane: 0">' in day


def test_a_day_of_the_clock_change_places_events_at_their_wall_clock_time(
    learner_client, learner, make_formation
):
    # 28 March 2027: 23 hours in Paris. 10:00 is still 10:00, at 10/24 of the column.
    make_formation(title="Dimanche", start=datetime(2027, 3, 28, 10, tzinfo=PARIS), hours=2,
                   learners=(learner,))  # fmt: skip
    make_formation(title="Automne", start=datetime(2027, 10, 31, 10, tzinfo=PARIS), hours=2,
                   learners=(learner,))  # fmt: skip

    spring = block_styles(page(learner_client, view="day", date="2027-03-28"))
    autumn = block_styles(page(learner_client, view="day", date="2027-10-31"))

    assert spring["Dimanche"].startswith("--top: 41.6667%; --height: 8.3333%;")
    assert autumn["Automne"].startswith("--top: 41.6667%; --height: 8.3333%;")


def test_the_current_time_is_a_line_on_today_only(learner_client, learner):
    now = timezone.localtime()

    for view in ("week", "day"):
        text = page(learner_client, view=view)
        lines = re.findall(r'<div class="now-line" style="--now: ([0-9.]+)%" '
                           r'data-minute="([0-9]+)" aria-hidden="true">', text)  # fmt: skip
        assert len(lines) == 1
        minute = int(lines[0][1])
        assert abs(minute - (now.hour * 60 + now.minute)) <= 1
        assert float(lines[0][0]) == pytest.approx(minute * 100 / 1440, abs=1e-3)
        # In today's column, the one marked as the current date.
        column = text[: text.index('<div class="now-line"')].rsplit('<li class="tg-day', 1)[1]
        assert column.startswith(' is-today">') and 'aria-current="date"' in column

    other = page(learner_client, view="week", date=(now.date() + timedelta(days=7)).isoformat())
    assert "now-line" not in other


def test_the_day_view_shows_one_day_with_its_own_navigation(learner_client, learner):
    text = page(learner_client, view="day", date="2027-04-08")

    assert '<h2 id="period-title" class="period-title">Jeudi 8 avril 2027</h2>' in text
    assert text.count('<li class="tg-day') == 1
    assert '<h3 class="tg-day-heading">Jeudi 8 avril</h3>' in text  # no link to itself
    nav = re.search(r'<nav class="calendar-nav".*?</nav>', text, re.S).group(0)
    assert (
        f'href="{URL}?view=day&amp;date=2027-04-07"><span aria-hidden="true">‹ </span>Jour pré'
        in nav
    )
    assert f'href="{URL}?view=day&amp;date=2027-04-09">Jour suivant' in nav
    assert f'<a href="{URL}?view=day&amp;date=2027-04-08" aria-current="true">Jour</a>' in text
    assert '<p class="visually-hidden">Rien de prévu</p>' in text


@pytest.mark.parametrize("view", ["month", "week", "agenda"])
def test_every_view_links_to_the_day_view(learner_client, view):
    text = page(learner_client, view=view, date="2027-04-08")
    assert f'<a href="{URL}?view=day&amp;date=2027-04-08">Jour</a>' in text


def test_each_day_of_the_month_leads_to_that_day(learner_client):
    text = page(learner_client, view="month", date="2027-04-08")

    days = re.findall(r'<p class="day-label"><a href="([^"]+)">', text)
    assert len(days) == 35
    assert days[10] == f"{URL}?view=day&amp;date=2027-04-08"  # from Monday 29 March


@pytest.mark.parametrize("view", ["week", "day"])
def test_no_id_is_used_twice_in_the_grid(learner_client, learner, make_calendar, make_event,
                                         make_formation, view):  # fmt: skip
    calendar = make_calendar(learner)
    for hour in (9, 9, 10, 14):
        make_event(calendar, start=datetime(2027, 4, 8, hour, tzinfo=PARIS))
    make_event(calendar, all_day=date(2027, 4, 7), days=3)
    make_formation(start=datetime(2027, 4, 8, 9, tzinfo=PARIS), learners=(learner,))

    text = page(learner_client, view=view, date="2027-04-08")

    repeated = {k: n for k, n in Counter(re.findall(r'\sid="([^"]+)"', text)).items() if n > 1}
    assert repeated == {}
    assert len(grid_links(text)) == 6
