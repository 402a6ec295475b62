"""A formation over one of the learner's busy events is flagged: on "Mes formations", on the
formation's page (with "Je m'en occupe" and "Signaler à nouveau"), on the calendar page (both
items marked), and in the API."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Profile
from accounts.services import api_token_create
from calendars.models import Calendar, CalendarEvent, ConflictDismissal
from tests.calendars.client_helpers import BASE, error_of, messages_of, text_of, words_of

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
LIST = reverse("formations:list")
CALENDAR = reverse("calendars:calendar")


def next_tuesday() -> datetime:
    """9:00 in Paris on a Tuesday two to three weeks ahead: a formation still to come."""
    today = timezone.localdate()
    day = today + timedelta(days=14 + (1 - today.weekday()) % 7)
    return datetime.combine(day, time(9), tzinfo=PARIS)


NINE = next_tuesday()


@pytest.fixture
def formation(learner, make_formation):
    """Tuesday 9:00-12:00 in Paris, the learner enrolled."""
    return make_formation(start=NINE, hours=3, learners=(learner,), title="Excel")


@pytest.fixture
def calendar(learner, make_calendar):
    return make_calendar(learner)


@pytest.fixture
def dentist(calendar, make_event):
    """The learner's busy event, Tuesday 10:00-11:00, over the formation."""
    return make_event(calendar, start=NINE + timedelta(hours=1), title="Dentiste")


def detail(client: Client, formation) -> str:
    response = client.get(formation.get_absolute_url())
    assert response.status_code == 200
    return text_of(response)


def conflicts_section(page: str) -> str:
    """What the formation page's conflicts section reads; "" without one."""
    found = re.search(r'<section id="conflicts".*?</section>', page, re.S)
    return words_of(found.group(0)) if found else ""


def dismiss_url(formation, event) -> str:
    return reverse("calendars:dismiss_conflict", args=[formation.pk, event.pk])


def restore_url(formation, event) -> str:
    return reverse("calendars:restore_conflict", args=[formation.pk, event.pk])


# --- the formation's page ----------------------------------------------------------------


def test_the_formation_page_says_which_event_clashes_when_and_offers_to_handle_it(
    learner_client, formation, dentist
):
    section = conflicts_section(detail(learner_client, formation))

    assert "Conflit avec 1 événement de votre agenda (Google Agenda) :" in section
    assert "Mardi 10:00–11:00 — Dentiste" in section
    assert "Je m'en occupe" in section


def test_several_events_are_counted_by_provider(
    learner_client, learner, formation, calendar, make_calendar, make_event
):
    make_event(calendar, start=NINE, title="Réunion")
    make_event(calendar, start=NINE + timedelta(hours=2), title="Appel")
    make_event(make_calendar(learner, provider="outlook"), start=NINE, title="Point")

    section = conflicts_section(detail(learner_client, formation))

    assert "Conflit avec 2 événements de votre agenda (Google Agenda) :" in section
    assert "Conflit avec 1 événement de votre agenda (Outlook) :" in section
    assert section.count("Je m'en occupe") == 3


def test_times_are_in_the_learners_zone(learner_client, learner, formation, dentist):
    Profile.objects.create(user=learner, time_zone="America/New_York")

    section = conflicts_section(detail(learner_client, formation))

    assert "Mardi 04:00–05:00 — Dentiste" in section


def test_an_all_day_event_reads_as_the_whole_day(learner_client, formation, calendar, make_event):
    make_event(calendar, all_day=NINE.date(), title="Salon")

    section = conflicts_section(detail(learner_client, formation))

    assert "Mardi, toute la journée — Salon" in section


def test_an_event_over_midnight_says_both_days(
    learner_client, learner, make_formation, calendar, make_event
):
    late = make_formation(start=NINE.replace(hour=20), hours=2, learners=(learner,))
    make_event(calendar, start=NINE.replace(hour=21), hours=4, title="Train de nuit")

    section = conflicts_section(detail(learner_client, late))

    assert "Mardi 21:00 – mercredi 01:00 — Train de nuit" in section


def test_no_section_without_a_conflict(learner_client, formation, calendar, make_event):
    make_event(calendar, start=NINE + timedelta(days=1))

    assert conflicts_section(detail(learner_client, formation)) == ""


def test_a_past_formation_shows_no_conflict(
    learner_client, learner, make_formation, calendar, make_event
):
    past = make_formation(start=timezone.now() - timedelta(days=2), learners=(learner,))
    make_event(calendar, start=past.start)

    assert conflicts_section(detail(learner_client, past)) == ""


def test_events_of_hidden_calendars_count_on_the_formation_page(
    learner_client, formation, calendar, dentist
):
    Calendar.objects.filter(pk=calendar.pk).update(shown=False)

    assert "Dentiste" in conflicts_section(detail(learner_client, formation))


@pytest.mark.parametrize(
    "fields",
    [
        {"response": CalendarEvent.Response.DECLINED},
        {"busy": False},
        {"status": CalendarEvent.Status.CANCELLED},
    ],
    ids=["declined", "free", "cancelled"],
)
def test_declined_free_or_cancelled_events_are_not_conflicts(
    learner_client, formation, calendar, make_event, fields
):
    make_event(calendar, start=NINE, **fields)

    assert conflicts_section(detail(learner_client, formation)) == ""


def test_events_not_imported_or_only_touching_are_not_conflicts(
    learner_client, learner, formation, make_calendar, make_event
):
    make_event(make_calendar(learner, external_id="work", import_enabled=False), start=NINE)
    primary = make_calendar(learner)
    make_event(primary, start=NINE - timedelta(hours=1))  # until 9:00
    make_event(primary, start=formation.end)  # from 12:00

    assert conflicts_section(detail(learner_client, formation)) == ""


def test_an_event_title_is_escaped(learner_client, formation, calendar, make_event):
    make_event(calendar, start=NINE, title="<script>alert(1)</script>")

    response = learner_client.get(formation.get_absolute_url())

    assert "<script>alert(1)" not in response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.content.decode()


def test_another_learners_events_are_never_shown_on_a_shared_formation(
    learner_client, make_user, formation, make_calendar, make_event
):
    other = make_user()
    formation.enrollments.create(learner=other)
    make_event(make_calendar(other), start=NINE, title="Rendez-vous privé")

    page = detail(learner_client, formation)

    assert "Rendez-vous privé" not in page
    assert conflicts_section(page) == ""


# --- "je m'en occupe" --------------------------------------------------------------------


def test_je_m_en_occupe_dismisses_it_and_signaler_a_nouveau_brings_it_back(
    learner_client, formation, dentist
):
    response = learner_client.post(dismiss_url(formation, dentist), follow=True)

    assert response.redirect_chain == [(f"{formation.get_absolute_url()}#conflicts", 302)]
    assert messages_of(response) == [
        "C'est noté : ce conflit ne vous est plus signalé, sauf si la formation ou "
        "l'événement change d'horaire."
    ]
    section = conflicts_section(text_of(response))
    assert "Conflit avec" not in section
    assert "Écarté Mardi 10:00–11:00 — Dentiste (Google Agenda)" in section
    assert "Signaler à nouveau" in section

    response = learner_client.post(restore_url(formation, dentist), follow=True)

    assert messages_of(response) == ["Ce conflit vous est de nouveau signalé."]
    section = conflicts_section(text_of(response))
    assert "Conflit avec 1 événement" in section
    assert "Écarté" not in section


def test_a_dismissed_conflict_comes_back_when_the_event_moves(learner_client, formation, dentist):
    learner_client.post(dismiss_url(formation, dentist))

    dentist.start += timedelta(minutes=30)
    dentist.end += timedelta(minutes=30)
    dentist.save()

    section = conflicts_section(detail(learner_client, formation))
    assert "Conflit avec 1 événement" in section
    assert "Mardi 10:30–11:30 — Dentiste" in section
    assert "Écarté" not in section


def test_a_dismissed_conflict_comes_back_when_the_formation_moves(
    learner_client, formation, dentist
):
    learner_client.post(dismiss_url(formation, dentist))

    formation.start -= timedelta(hours=1)
    formation.save()

    section = conflicts_section(detail(learner_client, formation))
    assert "Conflit avec 1 événement" in section
    assert "Écarté" not in section


def test_a_conflict_gone_before_the_click_is_said_so(learner_client, formation, dentist):
    CalendarEvent.objects.filter(pk=dentist.pk).update(
        start=NINE + timedelta(days=1), end=NINE + timedelta(days=1, hours=1)
    )

    response = learner_client.post(dismiss_url(formation, dentist), follow=True)

    assert messages_of(response) == ["Cet événement n'est plus en conflit avec la formation."]
    assert not ConflictDismissal.objects.exists()


def test_another_learners_formation_or_event_cannot_be_dismissed(
    learner_client, learner, make_user, make_formation, make_calendar, make_event, formation
):
    other = make_user()
    their_formation = make_formation(start=NINE, learners=(other,))
    their_event = make_event(make_calendar(other), start=NINE)
    mine = make_event(make_calendar(learner), start=NINE)

    for url in (
        dismiss_url(their_formation, mine),
        dismiss_url(formation, their_event),
        restore_url(their_formation, mine),
        restore_url(formation, their_event),
        reverse("calendars:dismiss_conflict", args=[formation.pk, 999_999]),
    ):
        assert learner_client.post(url).status_code == 404, url
    assert not ConflictDismissal.objects.exists()


def test_dismissing_takes_a_post(learner_client, formation, dentist):
    assert learner_client.get(dismiss_url(formation, dentist)).status_code == 405
    assert not ConflictDismissal.objects.exists()


# --- in English --------------------------------------------------------------------------


def test_in_english_the_page_speaks_english(learner_client, learner, formation, dentist):
    Profile.objects.create(user=learner, language="en")

    section = conflicts_section(detail(learner_client, formation))

    assert "Clashes with 1 event of your calendar (Google Calendar):" in section
    assert "I'll handle it" in section
    assert "Tuesday 10:00–11:00 — Dentiste" in section
    assert "Conflit" not in section and "Mardi" not in section
    assert "Je m'en occupe" not in section


# --- "Mes formations" --------------------------------------------------------------------


def flags(client: Client) -> dict[str, str]:
    """Each formation of the list page by title, with what its conflict flag says."""
    page = text_of(client.get(LIST))
    found = {}
    for item in re.findall(r'<li class="formation-item.*?</li>', page, re.S):
        title = words_of(re.search(r"<h3>.*?</h3>", item, re.S).group(0))
        flag = re.search(r'<p class="conflict-flag">.*?</p>', item, re.S)
        found[title] = words_of(flag.group(0)) if flag else ""
    return found


def test_the_list_flags_the_formations_that_clash(
    learner_client, learner, formation, dentist, make_formation, calendar, make_event
):
    make_formation(start=NINE + timedelta(days=1), learners=(learner,), title="Word")
    both = make_formation(start=NINE + timedelta(days=2), learners=(learner,), title="Access")
    make_event(calendar, start=both.start)
    make_event(calendar, start=both.start + timedelta(hours=1))

    assert flags(learner_client) == {
        "Excel": "⚠ Conflit avec 1 événement de votre agenda",
        "Word": "",
        "Access": "⚠ Conflit avec 2 événements de votre agenda",
    }


def test_the_list_no_longer_flags_a_dismissed_conflict(learner_client, formation, dentist):
    learner_client.post(dismiss_url(formation, dentist))

    assert flags(learner_client) == {"Excel": ""}


def test_the_list_does_not_flag_past_formations(
    learner_client, learner, make_formation, calendar, make_event
):
    past = make_formation(start=timezone.now() - timedelta(days=2), learners=(learner,),
                          title="Ancienne")  # fmt: skip
    make_event(calendar, start=past.start)

    assert flags(learner_client) == {"Ancienne": ""}


def test_the_lists_queries_do_not_grow_with_its_formations(
    learner_client, learner, make_formation, calendar, make_event
):
    upcoming, counts = 0, []
    for count in (2, 40):  # upcoming and past formations, each with an event over it
        for _ in range(count):
            upcoming += 1
            for start in (NINE + timedelta(days=upcoming), NINE - timedelta(days=upcoming + 30)):
                make_formation(start=start, learners=(learner,))
                make_event(calendar, start=start)
        with CaptureQueriesContext(connection) as queries:
            response = learner_client.get(LIST)
        assert response.status_code == 200
        assert text_of(response).count('class="conflict-flag"') == upcoming
        counts.append(len(queries))

    assert counts[0] == counts[1]


# --- the calendar page -------------------------------------------------------------------


def week(client: Client, **query: str):
    response = client.get(CALENDAR, {"view": "week", "date": f"{NINE:%Y-%m-%d}", **query})
    assert response.status_code == 200
    return response


def marked(response) -> dict[str, list[str]]:
    """The keys of the page's items that are in conflict, with the keys they clash with."""
    return {
        e.item.key: [o.key for o in e.item.conflicts]
        for day in response.context["days"]
        for e in day.entries
        if e.item.conflicts
    }


def grid_event(response, key: str) -> str:
    found = re.search(rf'<a class="entry tg-event[^"]*"[^>]*data-key="{key}">.*?</a>',
                      text_of(response), re.S)  # fmt: skip
    assert found, key
    return found.group(0)


def test_the_week_marks_both_the_formation_and_the_event(learner_client, formation, dentist):
    response = week(learner_client)

    assert marked(response) == {
        f"formation-{formation.pk}": [f"event-{dentist.pk}"],
        f"event-{dentist.pk}": [f"formation-{formation.pk}"],
    }
    on_formation = grid_event(response, f"formation-{formation.pk}")
    on_event = grid_event(response, f"event-{dentist.pk}")
    for html in (on_formation, on_event):
        assert "has-conflict" in html.split(">")[0]
        assert '<span class="badge badge-conflict" aria-hidden="true">⚠ Conflit</span>' in html
    assert "en conflit avec l'événement Dentiste" in words_of(on_formation)
    assert "en conflit avec la formation Excel" in words_of(on_event)
    assert "une formation et un événement de votre agenda au même moment" in response.text


@pytest.mark.parametrize("view", ["month", "day", "agenda"])
def test_the_other_views_mark_them_too(learner_client, formation, dentist, view):
    response = week(learner_client, view=view)

    assert set(marked(response)) == {f"formation-{formation.pk}", f"event-{dentist.pk}"}
    assert response.text.count('<span class="badge badge-conflict" aria-hidden="true">') == 2


def test_an_event_begun_days_before_is_marked(learner_client, formation, calendar, make_event):
    make_event(calendar, start=NINE - timedelta(hours=9), hours=1)  # Tuesday 0:00-1:00
    trip = make_event(calendar, all_day=NINE.date() - timedelta(days=1), days=3)

    assert marked(week(learner_client)) == {
        f"formation-{formation.pk}": [f"event-{trip.pk}"],
        f"event-{trip.pk}": [f"formation-{formation.pk}"],
    }


def test_the_page_marks_nothing_without_a_conflict(learner_client, formation, calendar, make_event):
    make_event(calendar, start=NINE, busy=False)
    make_event(calendar, start=NINE, response=CalendarEvent.Response.DECLINED)
    make_event(calendar, start=NINE - timedelta(hours=2), hours=2)  # until 9:00
    make_event(calendar, start=formation.end)  # from 12:00

    response = week(learner_client)

    assert marked(response) == {}
    assert "badge-conflict" not in response.text


def test_a_cancelled_formation_is_not_marked(learner_client, formation, dentist):
    formation.status = formation.Status.CANCELLED
    formation.save()

    assert marked(week(learner_client)) == {}


def test_a_dismissed_conflict_is_not_marked(learner_client, formation, dentist):
    learner_client.post(dismiss_url(formation, dentist))

    response = week(learner_client)

    assert marked(response) == {}
    assert "badge-conflict" not in response.text


def test_a_hidden_calendars_events_are_not_marked_there(
    learner_client, formation, calendar, dentist
):
    Calendar.objects.filter(pk=calendar.pk).update(shown=False)

    response = week(learner_client)

    assert marked(response) == {}
    assert "Dentiste" not in response.text


def test_the_calendar_escapes_what_a_conflict_says(learner_client, formation, calendar, make_event):
    event = make_event(calendar, start=NINE, title="<script>alert(1)</script>")

    response = week(learner_client)

    raw = response.content.decode()
    assert "<script>" not in raw
    assert "en conflit avec l'événement &lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert f"event-{event.pk}" in marked(response)


def test_the_calendar_never_marks_another_learners_events(
    learner_client, make_user, formation, make_calendar, make_event
):
    other = make_user()
    formation.enrollments.create(learner=other)
    make_event(make_calendar(other), start=NINE, title="Rendez-vous privé")

    response = week(learner_client)

    assert marked(response) == {}
    assert "Rendez-vous privé" not in response.text


# --- the API -----------------------------------------------------------------------------


def api_events(client: Client) -> dict[str, list[str]]:
    day = NINE.date()
    response = client.get(f"{BASE}/events", {"start": f"{day}", "end": f"{day + timedelta(1)}"})
    assert response.status_code == 200
    return {item["id"]: item["conflicts"] for item in response.json()}


def test_the_events_list_says_what_clashes_with_what(
    learner_client, formation, dentist, calendar, make_event
):
    free = make_event(calendar, start=NINE, busy=False)

    assert api_events(learner_client) == {
        f"formation-{formation.pk}": [f"event-{dentist.pk}"],
        f"event-{dentist.pk}": [f"formation-{formation.pk}"],
        f"event-{free.pk}": [],
    }

    learner_client.post(dismiss_url(formation, dentist))

    assert api_events(learner_client) == {
        f"formation-{formation.pk}": [],
        f"event-{dentist.pk}": [],
        f"event-{free.pk}": [],
    }


def test_the_events_list_counts_hidden_calendars_as_it_lists_them(
    learner_client, formation, calendar, dentist
):
    Calendar.objects.filter(pk=calendar.pk).update(shown=False)

    assert api_events(learner_client)[f"formation-{formation.pk}"] == [f"event-{dentist.pk}"]


def test_a_formation_by_number_or_uid_with_its_conflicts(
    learner, learner_client, formation, dentist, calendar, make_event
):
    Profile.objects.create(user=learner, time_zone="America/New_York")
    salon = make_event(calendar, all_day=NINE.date(), title="Salon")
    day = NINE.date()
    offset = NINE.astimezone(zoneinfo.ZoneInfo("America/New_York")).strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}"

    for reference in (formation.pk, formation.uid):
        response = learner_client.get(f"{BASE}/formations/{reference}")

        assert response.status_code == 200, response.content
        assert response.json() == {
            "id": formation.pk,
            "uid": str(formation.uid),
            "title": "Excel",
            "start": f"{day}T03:00:00{offset}",
            "end": f"{day}T06:00:00{offset}",
            "timeZone": "Europe/Paris",
            "location": "",
            "status": "scheduled",
            "url": f"http://testserver{formation.get_absolute_url()}",
            "conflicts": [
                {
                    "eventId": f"event-{salon.pk}",
                    "title": "Salon",
                    "provider": "google",
                    "start": f"{day}",
                    "end": f"{day + timedelta(1)}",
                    "allDay": True,
                    "dismissed": False,
                },
                {
                    "eventId": f"event-{dentist.pk}",
                    "title": "Dentiste",
                    "provider": "google",
                    "start": f"{day}T04:00:00{offset}",
                    "end": f"{day}T05:00:00{offset}",
                    "allDay": False,
                    "dismissed": False,
                },
            ],
        }


def test_a_formation_of_someone_else_or_unknown_is_a_404(learner_client, make_user, make_formation):
    theirs = make_formation(start=NINE, learners=(make_user(),))

    for reference in (theirs.pk, theirs.uid, 999_999, "nope", "9" * 30, "²"):
        response = learner_client.get(f"{BASE}/formations/{reference}")
        assert error_of(response, 404)["code"] == "formation_not_found", reference


def test_the_api_dismisses_and_restores_a_conflict(learner, formation, dentist):
    _, token = api_token_create(user=learner, name="tests")
    client = Client(headers={"Authorization": f"Bearer {token}"})
    url = f"{BASE}/formations/{formation.uid}/conflicts/event-{dentist.pk}/dismissal"

    answer = client.post(url)
    assert answer.status_code == 200, answer.content
    assert (answer.json()["eventId"], answer.json()["dismissed"]) == (f"event-{dentist.pk}", True)
    dismissed = client.get(f"{BASE}/formations/{formation.pk}").json()["conflicts"]
    assert [c["dismissed"] for c in dismissed] == [True]

    answer = client.delete(url)
    assert answer.status_code == 200, answer.content
    assert answer.json()["dismissed"] is False
    assert not ConflictDismissal.objects.exists()


def test_the_api_takes_an_events_number_too(learner_client, formation, dentist):
    url = f"{BASE}/formations/{formation.pk}/conflicts/{dentist.pk}/dismissal"

    assert learner_client.post(url).json()["dismissed"] is True


def test_the_api_refuses_what_is_not_the_learners_conflict(
    learner_client, make_user, make_formation, make_calendar, make_event, formation, calendar
):
    other = make_user()
    their_formation = make_formation(start=NINE, learners=(other,))
    their_event = make_event(make_calendar(other), start=NINE)
    mine = make_event(calendar, start=NINE)
    elsewhere = make_event(calendar, start=NINE + timedelta(days=1))

    cases = [
        (their_formation.pk, f"event-{mine.pk}", "formation_not_found"),
        (formation.pk, f"event-{their_event.pk}", "conflict_not_found"),
        (formation.pk, f"event-{elsewhere.pk}", "conflict_not_found"),
        (formation.pk, "formation-1", "conflict_not_found"),
        (formation.pk, "event-0", "conflict_not_found"),
    ]
    for formation_id, event_id, code in cases:
        url = f"{BASE}/formations/{formation_id}/conflicts/{event_id}/dismissal"
        for method in ("post", "delete"):
            answer = getattr(learner_client, method)(url)
            assert error_of(answer, 404)["code"] == code, (method, url)
    assert not ConflictDismissal.objects.exists()
