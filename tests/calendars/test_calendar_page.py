"""The calendar page: the learner's formations and imported events by month, week and agenda."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import include, path, reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.text import capfirst

import config.urls
from accounts.models import Profile
from calendars import urls as calendar_urls
from calendars.agenda import period_of
from calendars.models import CalendarIntegration, ProviderFault, SyncRun

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
URL = reverse("calendars:calendar")


def page(client: Client, **query: str) -> Any:
    response = client.get(URL, query)
    assert response.status_code == 200
    return response


def keys_by_day(response: Any) -> dict[date, list[str]]:
    return {day.date: [e.item.key for e in day.entries] for day in response.context["days"]}


def titles(response: Any) -> list[str]:
    return [e.item.title for day in response.context["days"] for e in day.entries]


# --- whose items, which items ------------------------------------------------------------


def test_shows_only_the_learners_own_formations_and_events(
    learner_client, learner, make_user, make_formation, make_calendar, make_event
):
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    other = make_user()
    make_formation(title="Ma formation", start=start, learners=(learner,))
    make_formation(title="Formation d'un autre", start=start, learners=(other,))
    make_formation(title="Formation sans inscrit", start=start)
    make_event(make_calendar(learner), title="Mon rendez-vous", start=start)
    make_event(make_calendar(other), title="Rendez-vous d'un autre", start=start)
    make_event(make_calendar(other, provider="outlook"), title="Outlook d'un autre", start=start)

    for view in ("month", "week", "day", "agenda"):
        response = page(learner_client, view=view, date="2027-04-08")

        assert sorted(titles(response)) == ["Ma formation", "Mon rendez-vous"]
        assert "autre" not in response.text
        assert "sans inscrit" not in response.text


def test_calendars_not_imported_and_cancelled_events_are_absent(
    learner_client, learner, make_calendar, make_event
):
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    primary = make_calendar(learner)
    make_event(primary, title="Importé", start=start)
    make_event(primary, title="Annulé", start=start, status="cancelled")
    make_event(make_calendar(learner, external_id="work", import_enabled=False),
               title="Calendrier non importé", start=start)  # fmt: skip
    outlook = make_calendar(learner, provider="outlook")
    make_event(outlook, title="Import désactivé", start=start)
    CalendarIntegration.objects.filter(pk=outlook.integration_id).update(import_enabled=False)

    response = page(learner_client, view="week", date="2027-04-08")

    assert titles(response) == ["Importé"]


def test_invitations_declined_are_absent_and_maybe_or_free_ones_say_so(
    learner_client, learner, make_calendar, make_event
):
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    primary = make_calendar(learner)
    make_event(primary, title="Refusée", start=start, response="declined")
    make_event(primary, title="Peut-être", start=start, response="tentative")
    make_event(primary, title="Sans réponse", start=start, response="needs_action")
    make_event(primary, title="Acceptée", start=start, response="accepted")
    make_event(primary, title="Libre", start=start, busy=False)

    response = page(learner_client, view="week", date="2027-04-08")

    assert sorted(titles(response)) == ["Acceptée", "Libre", "Peut-être", "Sans réponse"]
    text = response.content.decode()
    # Said in words, not by colour alone.
    assert text.count('class="badge badge-tentative"') == 2
    assert "Invitation sans réponse" in text
    assert text.count('class="badge badge-free"') == 1


def test_cancelled_formations_stay_visible_and_marked(learner_client, learner, make_formation):
    make_formation(title="Annulée", start=datetime(2027, 4, 8, 9, tzinfo=PARIS),
                   learners=(learner,), status="cancelled")  # fmt: skip

    response = page(learner_client, view="agenda", date="2027-04-08")

    assert titles(response) == ["Annulée"]
    assert 'class="entry source-formation is-cancelled"' in response.text
    assert 'class="badge badge-cancelled"' in response.text


# --- time zones and days -----------------------------------------------------------------


def test_the_learners_time_zone_moves_an_event_across_midnight(
    learner_client, learner, make_calendar, make_event
):
    event = make_event(make_calendar(learner), start=datetime(2027, 3, 10, 23, 30, tzinfo=UTC))
    key = f"event-{event.pk}"

    paris = page(learner_client, view="week", date="2027-03-10")
    assert keys_by_day(paris)[date(2027, 3, 11)] == [key]
    assert keys_by_day(paris)[date(2027, 3, 10)] == []
    assert "00:30–01:30" in paris.text

    Profile.objects.create(user=learner, time_zone="America/New_York")
    new_york = page(learner_client, view="week", date="2027-03-10")
    assert keys_by_day(new_york)[date(2027, 3, 10)] == [key]
    assert keys_by_day(new_york)[date(2027, 3, 11)] == []
    assert "18:30–19:30" in new_york.text


def test_an_all_day_event_covers_each_of_its_days_in_every_zone(
    learner_client, learner, make_calendar, make_event
):
    # Stored with midnights in Los Angeles, shown to a learner in Auckland: the dates stand.
    Profile.objects.create(user=learner, time_zone="Pacific/Auckland")
    event = make_event(make_calendar(learner), all_day=date(2027, 4, 6), days=3,
                       zone="America/Los_Angeles", title="Salon")  # fmt: skip
    key = f"event-{event.pk}"

    week = page(learner_client, view="week", date="2027-04-08")

    covered = [d for d, keys in keys_by_day(week).items() if key in keys]
    assert covered == [date(2027, 4, 6), date(2027, 4, 7), date(2027, 4, 8)]
    days = {day.date: day for day in week.context["days"]}
    assert [e.item.key for e in days[date(2027, 4, 7)].spanning] == [key]  # the all-day row
    assert days[date(2027, 4, 7)].timed == []
    # Drawn once, in the all-day row, from its first day (a Tuesday) over three columns.
    bars = [(b.item.key, b.column, b.span) for d in week.context["grid"].days for b in d.bars]
    assert bars == [(key, 1, 3)]
    assert week.text.count(f'data-key="{key}"') == 1
    assert '<li class="tg-bar" style="--span: 3; --lane: 0">' in week.text

    month = page(learner_client, view="month", date="2027-04-01")
    assert [d for d, keys in keys_by_day(month).items() if key in keys] == covered
    assert month.text.count(">Salon</a>") == 3


def test_a_formation_over_several_days_shows_on_each_with_its_times(
    learner_client, learner, make_formation
):
    formation = make_formation(title="Séminaire", start=datetime(2027, 4, 6, 9, tzinfo=PARIS),
                               hours=24 * 2 + 8, learners=(learner,))  # fmt: skip

    response = page(learner_client, view="week", date="2027-04-06")

    days = {day.date: day for day in response.context["days"]}
    whens = [
        [
            e.when
            for e in days[date(2027, 4, d)].spanning
            if e.item.key == f"formation-{formation.pk}"
        ]
        for d in (6, 7, 8, 9)
    ]
    assert whens == [["à partir de 09:00"], ["Toute la journée"], ["jusqu'à 17:00"], []]


def test_an_event_ending_at_midnight_does_not_cover_the_next_day(
    learner_client, learner, make_calendar, make_event
):
    make_event(make_calendar(learner), title="Soirée",
               start=datetime(2027, 4, 8, 20, tzinfo=PARIS), hours=4)  # fmt: skip

    response = page(learner_client, view="week", date="2027-04-08")

    assert [d for d, keys in keys_by_day(response).items() if keys] == [date(2027, 4, 8)]
    assert "20:00–00:00" in response.text


def test_timed_items_of_a_day_are_in_start_order_after_all_day_ones(
    learner_client, learner, make_formation, make_calendar, make_event
):
    calendar = make_calendar(learner)
    make_event(calendar, title="C 14h", start=datetime(2027, 4, 8, 14, tzinfo=PARIS))
    make_formation(title="B 10h", start=datetime(2027, 4, 8, 10, tzinfo=PARIS),
                   learners=(learner,))  # fmt: skip
    make_event(calendar, title="A 8h", start=datetime(2027, 4, 8, 8, tzinfo=PARIS))
    make_event(calendar, title="Journée", all_day=date(2027, 4, 8))

    response = page(learner_client, view="week", date="2027-04-08")

    day = next(d for d in response.context["days"] if d.date == date(2027, 4, 8))
    assert [e.item.title for e in day.entries] == ["Journée", "A 8h", "B 10h", "C 14h"]
    assert [e.item.title for e in day.timed] == ["A 8h", "B 10h", "C 14h"]


# --- views, periods, navigation ----------------------------------------------------------


def nav_links(response: Any) -> dict[str, str]:
    nav = re.search(r'<nav class="calendar-nav".*?</nav>', response.text, re.S).group(0)
    links = re.findall(r'<a[^>]*href="([^"]+)"[^>]*>(.*?)</a>', nav, re.S)
    return {re.sub(r"<[^>]+>|[‹›]", "", text).strip(): href for href, text in links}


def test_month_view_is_a_grid_of_whole_iso_weeks(learner_client, learner):
    response = page(learner_client, view="month", date="2027-04-15")

    period = response.context["period"]
    assert (period.start, period.end) == (date(2027, 3, 29), date(2027, 5, 3))  # Mon → Mon
    assert [[d.date.weekday() for d in week] for week in response.context["weeks"]] == [
        list(range(7))
    ] * 5
    assert '<h2 id="period-title" class="period-title">Avril 2027</h2>' in response.text
    assert response.text.count('<th scope="col">') == 7
    assert '<abbr title="lundi">lun</abbr>' in response.text
    assert nav_links(response) == {
        "Mois précédent": f"{URL}?view=month&amp;date=2027-03-01",
        "Aujourd'hui": f"{URL}?view=month",
        "Mois suivant": f"{URL}?view=month&amp;date=2027-05-01",
    }


def test_month_is_the_default_view(learner_client):
    response = page(learner_client)
    assert response.context["period"].view == "month"
    assert response.context["period"].day == timezone.localdate()


def test_week_view_runs_monday_to_sunday(learner_client):
    response = page(learner_client, view="week", date="2027-04-08")

    assert [d.date for d in response.context["days"]] == [
        date(2027, 4, 5) + timedelta(days=n) for n in range(7)
    ]
    assert "Semaine du 5 avril 2027 au 11 avril 2027" in response.text
    assert response.text.count('<li class="tg-day') == 7
    # Each day's heading leads to that day.
    assert f'<a href="{URL}?view=day&amp;date=2027-04-11">Dimanche 11 avril</a></h3>' in (
        response.text
    )
    assert nav_links(response) == {
        "Semaine précédente": f"{URL}?view=week&amp;date=2027-03-29",
        "Aujourd'hui": f"{URL}?view=week",
        "Semaine suivante": f"{URL}?view=week&amp;date=2027-04-12",
    }


def test_agenda_view_lists_the_next_30_days_by_day(
    learner_client, learner, make_calendar, make_event
):
    calendar = make_calendar(learner)
    for day, title in [(7, "Veille"), (8, "Premier jour"), (8, "Même jour"), (37, "Dernier jour"),
                       (38, "Lendemain")]:  # fmt: skip
        make_event(calendar, title=title, start=datetime(2027, 4, 1, 12, tzinfo=PARIS)
                   + timedelta(days=day - 1))  # fmt: skip

    response = page(learner_client, view="agenda", date="2027-04-08")

    assert [
        (d.date, [e.item.title for e in d.entries]) for d in response.context["agenda_days"]
    ] == [
        (date(2027, 4, 8), ["Même jour", "Premier jour"]),  # same time: by title
        (date(2027, 5, 7), ["Dernier jour"]),
    ]
    assert "Du 8 avril 2027 au 7 mai 2027" in response.text
    assert '<h3 id="day-2027-04-08">Jeudi 8 avril 2027</h3>' in response.text
    assert nav_links(response) == {
        "30 jours précédents": f"{URL}?view=agenda&amp;date=2027-03-09",
        "Aujourd'hui": f"{URL}?view=agenda",
        "30 jours suivants": f"{URL}?view=agenda&amp;date=2027-05-08",
    }


def test_an_empty_agenda_says_so(learner_client):
    response = page(learner_client, view="agenda", date="2027-04-08")
    assert "Rien de prévu sur ces 30 jours." in response.text


def test_view_links_keep_the_date_and_mark_the_current_view(learner_client):
    response = page(learner_client, view="week", date="2027-04-08")
    assert f'<a href="{URL}?view=week&amp;date=2027-04-08" aria-current="true">Semaine' in (
        response.text
    )
    assert f'<a href="{URL}?view=month&amp;date=2027-04-08">Mois</a>' in response.text
    assert f'<a href="{URL}?view=agenda&amp;date=2027-04-08">Agenda</a>' in response.text


@pytest.mark.parametrize(
    "value",
    ["nope", "2027-02-30", "2027-4-8", "20270408", "1717200000", "0001-01-01", "99999-01-01",
     "9999-12-31", "2027-04-08T10:00", ""],
)  # fmt: skip
@pytest.mark.parametrize("view", ["month", "week", "day", "agenda", "year"])
def test_a_bad_date_or_view_falls_back_to_today_and_the_month(learner_client, view, value):
    response = page(learner_client, view=view, date=value)

    period = response.context["period"]
    assert period.day == timezone.localdate()
    assert period.view == (view if view != "year" else "month")


@pytest.mark.parametrize("view", ["month", "week", "day", "agenda"])
def test_today_is_marked_as_the_current_date(learner_client, learner, make_formation, view):
    make_formation(title="Aujourd'hui", learners=(learner,),
                   start=timezone.localtime().replace(hour=12, minute=0))  # fmt: skip

    response = page(learner_client, view=view)

    assert response.text.count('aria-current="date"') == 1
    assert response.context["today"] == timezone.localdate()


def test_another_period_has_no_current_date(learner_client):
    assert 'aria-current="date"' not in page(learner_client, date="2001-01-01").text


# --- what each item shows ----------------------------------------------------------------


def test_items_link_to_their_details_which_link_to_the_formation_and_the_provider(
    learner_client, learner, make_formation, make_calendar, make_event
):
    start = datetime(2027, 4, 8, 9, 30, tzinfo=PARIS)
    formation = make_formation(title="Excel", start=start, location="Salle Lumière",
                               learners=(learner,))  # fmt: skip
    outlook = make_calendar(learner, provider="outlook", name="Travail")
    make_event(outlook, title="Point", start=start, location="Bureau 4",
               html_link="https://outlook.example.com/e/1")  # fmt: skip

    event = outlook.events.get()
    for view in ("agenda", "month"):
        response = page(learner_client, view=view, date="2027-04-08")

        for key, title in ((f"formation-{formation.pk}", "Excel"), (f"event-{event.pk}", "Point")):
            details = reverse("calendars:event", args=[key])
            assert (
                f'<a class="entry-title" href="{details}?view={view}&amp;date=2027-04-08" '
                f'data-details data-key="{key}">{title}</a>'
            ) in response.text
    for text in ("09:30–12:30", "09:30–10:30", "Salle Lumière", "Bureau 4", "Travail"):
        assert text in page(learner_client, view="agenda", date="2027-04-08").text
    # The details link on, to the formation's page and to the event at its provider.
    formation_details = learner_client.get(
        reverse("calendars:event", args=[f"formation-{formation.pk}"])
    ).text
    assert f'href="{formation.get_absolute_url()}"' in formation_details
    event_details = learner_client.get(reverse("calendars:event", args=[f"event-{event.pk}"])).text
    assert 'href="https://outlook.example.com/e/1" rel="noopener noreferrer"' in event_details


def test_provider_data_is_escaped(learner_client, learner, make_calendar, make_event):
    make_event(
        make_calendar(learner, name="<b>Agenda</b>"),
        start=datetime(2027, 4, 8, 9, tzinfo=PARIS),
        title="<script>alert(1)</script>",
        location='<img src=x onerror="alert(2)">',
        html_link='https://example.com/"><script>alert(3)</script>',
    )

    for view in ("month", "week", "day", "agenda"):
        text = page(learner_client, view=view, date="2027-04-08").text

        assert "<script>" not in text
        assert "<img" not in text and "<b>Agenda" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in text


@pytest.mark.parametrize(
    ("language", "place", "calendar_label"),
    [("fr", "Lieu :", "Calendrier :"), ("en", "Place:", "Calendar:")],
)
def test_an_entry_says_its_place_and_calendar_to_screen_readers(
    learner_client, learner, make_calendar, make_event, language, place, calendar_label
):
    Profile.objects.create(user=learner, language=language)
    calendar = make_calendar(learner, name="Perso")
    make_event(calendar, start=datetime(2027, 4, 8, 9, tzinfo=PARIS), location="Salle 3")

    text = page(learner_client, view="agenda", date="2027-04-08").text

    assert (
        f'<span class="entry-location"><span class="visually-hidden">{place} </span>Salle 3</span>'
    ) in text
    assert f'<span class="visually-hidden">{calendar_label} </span>Perso</span>' in text


def test_the_titles_a_conflict_names_are_escaped(
    learner_client, learner, make_formation, make_calendar, make_event
):
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    make_formation(title="<i>Excel</i>", start=start, learners=(learner,))
    make_event(make_calendar(learner), start=start, title="<script>alert(1)</script>")

    for view in ("month", "week", "day", "agenda"):
        text = page(learner_client, view=view, date="2027-04-08").text

        assert "<script>" not in text and "<i>Excel" not in text
        assert "avec l'événement &lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "avec la formation &lt;i&gt;Excel&lt;/i&gt;" in text


@pytest.mark.parametrize("link", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x",
                                  ""])  # fmt: skip
def test_an_event_link_that_is_not_http_is_not_a_link(
    learner_client, learner, make_calendar, make_event, link
):
    make_event(make_calendar(learner), title="Piège", html_link=link,
               start=datetime(2027, 4, 8, 9, tzinfo=PARIS))  # fmt: skip

    for view in ("agenda", "month", "week", "day"):
        text = page(learner_client, view=view, date="2027-04-08").text

        # The item links to its details (which offer no such link: test_event_detail.py),
        # never to what the provider gave.
        assert re.search(
            r'href="/calendar/event/event-\d+/\?[^"]*"[^>]*>\s*(<[^>]+>[^<]*)*Piège', text
        )
        assert "alert(1)" not in text and "data:text" not in text


def test_the_legend_names_each_source_and_each_item_says_its_source(
    learner_client, learner, make_formation, make_calendar, make_event
):
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    make_formation(start=start, learners=(learner,))
    make_event(make_calendar(learner), start=start)
    make_event(make_calendar(learner, provider="outlook"), start=start)

    for view in ("month", "week", "day", "agenda"):
        text = page(learner_client, view=view, date="2027-04-08").text

        legend = re.search(r'<div class="calendar-legend">.*?</ul>', text, re.S).group(0)
        assert '<p id="legend-title" class="legend-title">Légende</p>' in legend
        assert re.findall(r'<li class="source-(\w+)">.*?</span>([^<]+)</li>', legend) == [
            ("formation", "Formation"),
            ("google", "Google Agenda"),
            ("outlook", "Outlook"),
        ]
        # A text label on every item, not only its colour (visually hidden in the month grid).
        labels = re.findall(r'<span class="entry-source[^"]*">([^<]+)</span>', text)
        assert sorted(label.rstrip(" :") for label in labels) == [
            "Formation",
            "Google Agenda",
            "Outlook",
        ]


def test_the_legend_lists_only_the_providers_connected(
    learner_client, learner, make_calendar, make_event
):
    legend = r'<ul aria-labelledby="legend-title">.*?</ul>'
    text = page(learner_client).text
    assert re.findall(r'class="source-(\w+)"', re.search(legend, text, re.S).group(0)) == [
        "formation"
    ]
    assert "Calendriers affichés" not in text  # nothing to show or hide
    make_calendar(learner, provider="outlook")
    text = page(learner_client).text
    assert re.findall(r'class="source-(\w+)"', re.search(legend, text, re.S).group(0)) == [
        "formation",
        "outlook",
    ]


def _shown_boxes(text: str) -> dict[str, bool]:
    form = re.search(r'<form[^>]*class="shown-calendars".*?</form>', text, re.S).group(0)
    boxes = re.findall(
        r'<li class="source-(\w+)">\s*<input type="checkbox" name="shown" value="\d+" '
        r'id="(shown-\d+)"( checked)?>\s*<label for="\2">.*?</span>([^<]+)</label>',
        form,
        re.S,
    )
    return {f"{provider}:{name}": bool(checked) for provider, _, checked, name in boxes}


def test_a_calendar_hidden_on_the_page_stays_hidden_and_imported(
    learner_client, learner, make_calendar, make_event, bearer
):
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    work = make_calendar(learner, name="Travail", external_id="work")
    home = make_calendar(learner, name="Maison", external_id="home")
    teams = make_calendar(learner, provider="outlook", name="Équipe")
    make_calendar(learner, name="Pas importé", external_id="off", import_enabled=False)
    for calendar in (work, home, teams):
        make_event(calendar, start=start, title=f"Chez {calendar.name}")
    text = page(learner_client, view="week", date="2027-04-08").text
    assert _shown_boxes(text) == {
        "google:Maison": True,
        "google:Travail": True,
        "outlook:Équipe": True,
    }

    response = learner_client.post(
        reverse("calendars:show_calendars"),
        {"shown": [str(work.pk), str(teams.pk)], "view": "week", "date": "2027-04-08"},
    )

    assert response["Location"] == f"{URL}?view=week&date=2027-04-08"
    for view in ("week", "day", "month", "agenda"):  # remembered, whatever the view
        shown = page(learner_client, view=view, date="2027-04-08")
        assert sorted(titles(shown)) == ["Chez Travail", "Chez Équipe"]
    assert _shown_boxes(shown.text)["google:Maison"] is False
    assert home.events.count() == 1  # hidden, not forgotten
    # Another client of the API sees every imported event: the choice is the page's.
    api = learner_client.get(
        "/api/calendar-integration/events", {"start": "2027-04-08", "end": "2027-04-09"}
    )
    assert len(api.json()) == 3

    learner_client.post(reverse("calendars:show_calendars"), {"shown": [str(home.pk)]})
    assert titles(page(learner_client, view="week", date="2027-04-08")) == ["Chez Maison"]


def test_showing_calendars_touches_only_the_learners_own(client, make_user, learner, make_calendar):
    mine = make_calendar(learner)
    other = make_user("other")
    theirs = make_calendar(other)
    client.force_login(other)
    client.post(reverse("calendars:show_calendars"), {"shown": [str(mine.pk)]})
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.shown is True  # untouched: not theirs
    assert theirs.shown is False  # their own, not in the list: hidden
    assert client.get(reverse("calendars:show_calendars")).status_code == 405


def test_a_busy_day_in_the_month_links_to_that_day(
    learner_client, learner, make_calendar, make_event
):
    calendar = make_calendar(learner)
    for hour in range(8, 14):
        make_event(calendar, start=datetime(2027, 4, 8, hour, tzinfo=PARIS))

    text = page(learner_client, view="month", date="2027-04-08").text

    assert text.count('<li class="entry source-google') == 4
    assert f'href="{URL}?view=day&amp;date=2027-04-08">+ 2 autres' in text


@pytest.mark.parametrize(
    ("language", "today_words", "more"),
    [
        ("fr", "aujourd'hui", '+ 1 autre<span class="visually-hidden"> ce jour-là</span>'),
        ("en", "today", '+ 1 more<span class="visually-hidden"> that day</span>'),
    ],
)
def test_a_month_day_names_itself_shows_four_entries_and_says_how_many_more(
    learner_client, learner, make_calendar, make_event, language, today_words, more
):
    Profile.objects.create(user=learner, language=language)
    calendar = make_calendar(learner)
    today = timezone.localdate()
    for hour in range(8, 13):
        make_event(calendar, start=datetime(today.year, today.month, today.day, hour,
                                            tzinfo=PARIS))  # fmt: skip

    text = page(learner_client, view="month").text

    with translation.override(language):
        name = capfirst(date_format(today, "l j F"))
    day_url = f"{URL}?view=day&amp;date={today.isoformat()}"
    cell = re.search(r'<td class="day is-today" aria-current="date">.*?</td>', text, re.S)
    assert cell is not None
    assert cell.group(0).startswith(
        '<td class="day is-today" aria-current="date">\n'
        f'        <p class="day-label"><a href="{day_url}"><span class="day-number" '
        f'aria-hidden="true">{today.day}</span><span class="day-full">{name}</span><span '
        f'class="visually-hidden"> ({today_words})</span></a></p>\n'
        '        \n        <ul class="entries">\n          <li class="entry source-google">'
    )
    assert cell.group(0).count('<li class="entry ') == 4
    assert cell.group(0).endswith(
        f'</li>\n\n        </ul>\n        \n        <a class="day-more" href="{day_url}">'
        f"{more}</a>\n        \n        \n      </td>"
    )
    # A day of the next month that the grid's last week shows, and an empty one of this month.
    following = (today.replace(day=1) + timedelta(days=31)).replace(day=1)
    last = period_of("month", today).last
    if last >= following:
        other_url = f"{URL}?view=day&amp;date={last.isoformat()}"
        assert (
            '<td class="day other-month is-empty">\n'
            f'        <p class="day-label"><a href="{other_url}"><span class="day-number" '
            f'aria-hidden="true">{last.day}</span>'
        ) in text
    assert '<td class="day is-empty">' in text


# --- import button -------------------------------------------------------------------------


def _import_now(request: Any) -> None:  # pragma: no cover - only reversed
    raise NotImplementedError


class UrlsWithImportNow:
    """The site's URLs, the calendar's with an `import_now` (the page must show the button)."""

    urlpatterns = [
        *(p for p in config.urls.urlpatterns if getattr(p, "namespace", None) != "calendars"),
        path("calendar/", include(([*calendar_urls.urlpatterns,
                                    path("import", _import_now, name="import_now")],
                                   "calendars"))),
    ]  # fmt: skip


class UrlsWithoutImportNow:
    """The site's URLs before the import view exists (the page must work without it)."""

    urlpatterns = [
        *(p for p in config.urls.urlpatterns if getattr(p, "namespace", None) != "calendars"),
        path("calendar/", include(([p for p in calendar_urls.urlpatterns
                                    if getattr(p, "name", None) != "import_now"], "calendars"))),
    ]  # fmt: skip


def test_import_now_button_posts_to_the_import_view(learner_client, learner, make_calendar,
                                                    settings):  # fmt: skip
    settings.ROOT_URLCONF = UrlsWithImportNow
    make_calendar(learner)

    text = page(learner_client).text

    form = re.search(r'<form method="post" action="/calendar/import".*?</form>', text, re.S)
    assert form and 'name="csrfmiddlewaretoken"' in form.group(0)
    assert ">Synchroniser maintenant</button>" in form.group(0)


def test_page_works_before_the_import_view_exists(learner_client, learner, make_calendar,
                                                  settings):  # fmt: skip
    settings.ROOT_URLCONF = UrlsWithoutImportNow
    make_calendar(learner)

    assert "Synchroniser maintenant" not in page(learner_client).text


def test_without_a_connected_calendar_the_page_says_where_to_connect_one(learner_client, settings):
    settings.ROOT_URLCONF = UrlsWithImportNow

    text = page(learner_client).text

    assert "Synchroniser maintenant" not in text
    assert f'href="{reverse("settings_calendars")}"' in text


# --- cost --------------------------------------------------------------------------------


def test_the_page_makes_a_fixed_number_of_queries(
    learner_client,
    learner,
    make_formation,
    make_calendar,
    make_event,
    django_assert_max_num_queries,
):
    google, outlook = make_calendar(learner), make_calendar(learner, provider="outlook")
    first = datetime(2027, 4, 1, 8, tzinfo=PARIS)

    def add(count: int) -> None:
        for n in range(count):
            start = first + timedelta(days=n % 28, hours=n % 10)
            make_formation(start=start, learners=(learner,))
            make_event(google if n % 2 else outlook, start=start, hours=2 + n % 30)
            make_event(google, all_day=start.date(), days=1 + n % 3)

    counts = []
    for added in (5, 195):  # 5 of each, then 200
        add(added)
        for view in ("month", "week", "day", "agenda"):
            with django_assert_max_num_queries(QUERIES) as captured:
                response = learner_client.get(URL, {"view": view, "date": "2027-04-08"})
            assert response.status_code == 200
            counts.append((view, len(captured)))

    assert counts[:4] == counts[4:]
    assert sum(len(day.entries) for day in response.context["days"]) > 600


# Session, user with their profile (time zone; signed in with Google), formations, events,
# the conflicts the learner dismissed over the period (those of the others are found among the
# formations and events), the integrations with the state of their syncs (which also give
# base.html's banner of the providers unavailable; those to reconnect are said by the sync
# states), the calendars to show or hide, and the page's version (the counts and latest
# changes of events, sync runs and formations, in one query) that its script compares to keep
# it current.
QUERIES = 8


def test_the_banner_of_a_provider_unavailable_is_the_one_every_page_shows(
    learner_client, learner, make_calendar
):
    """The calendar page gives base.html's banner from its sync states, not from the
    context processor's query: the same integrations as on the other pages."""
    make_calendar(learner)
    make_calendar(learner, provider="outlook")
    for provider in ("google", "outlook"):
        ProviderFault.objects.create(provider=provider, detail="secret expired",
                                     probe_at=timezone.now())  # fmt: skip
    # Google's grant is lost as well: that banner asks to reconnect, not to wait.
    CalendarIntegration.objects.filter(provider="google").update(
        status=CalendarIntegration.Status.NEEDS_RECONNECT
    )
    banner = re.compile(r'<div class="banner banner-warning" role="status">.*?</div>', re.S)

    on_page = banner.findall(page(learner_client).text)
    elsewhere = banner.findall(learner_client.get(reverse("formations:list")).content.decode())

    assert on_page == elsewhere
    assert len(on_page) == 1
    assert "La synchronisation avec Outlook est suspendue" in on_page[0]
    assert "Google" not in on_page[0]

    ProviderFault.objects.filter(provider="outlook").delete()
    assert not banner.findall(page(learner_client).text)


def test_signed_out_visitors_are_sent_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_signed_in_learners_can_open_every_view(learner_client: Client):
    for view in ("month", "week", "day", "agenda"):
        assert learner_client.get(URL, {"view": view}).status_code == 200


def test_the_version_moves_when_what_the_page_shows_changes(
    learner_client, learner, make_user, make_formation, make_calendar, make_event
):
    version_url = reverse("calendars:version")

    def version():
        response = learner_client.get(version_url)
        assert response.status_code == 200
        assert "no-cache" in response["Cache-Control"]
        return response.json()["version"]

    calendar = make_calendar(learner)
    first = version()
    assert first in learner_client.get(URL).content.decode()  # the page carries it
    assert version() == first  # stable while nothing changes

    event = make_event(calendar, start=datetime(2027, 4, 1, 8, tzinfo=PARIS))
    second = version()
    assert second != first
    event.title = "Autre titre"
    event.save()
    third = version()
    assert third != second
    event.delete()
    assert version() != third

    before = version()
    make_formation(learners=(make_user(),))  # someone else's formation: not shown here
    assert version() == before
    make_formation(learners=(learner,))
    assert version() != before

    # A sync that starts (the page then says it is under way), and when it ends.
    before = version()
    run = SyncRun.objects.create(integration=calendar.integration, trigger="push",
                                 direction="both")  # fmt: skip
    started = version()
    assert started != before
    run.finished_at = timezone.now()
    run.save()
    assert version() != started


def test_the_version_moves_with_the_learners_own_rows_only(
    learner_client, learner, make_user, make_formation, make_calendar, make_event
):
    """The stamp's query is built once for every learner: each one's stamp still reads their
    own events, syncs and formations only."""
    version_url = reverse("calendars:version")
    mine = make_calendar(learner)
    make_event(mine, start=datetime(2027, 4, 1, 8, tzinfo=PARIS))
    make_formation(learners=(learner,))
    other = make_user()
    theirs = make_calendar(other)
    other_client = Client()
    other_client.force_login(other)
    before = learner_client.get(version_url).json()["version"]
    assert other_client.get(version_url).json()["version"] != before

    event = make_event(theirs, start=datetime(2027, 4, 1, 8, tzinfo=PARIS))
    event.title = "Autre titre"
    event.save()
    SyncRun.objects.create(integration=theirs.integration, trigger="push", direction="both")
    make_formation(learners=(other,))

    assert learner_client.get(version_url).json()["version"] == before


def test_the_version_needs_a_session(client, db):
    response = client.get(reverse("calendars:version"))
    assert response.status_code == 302
