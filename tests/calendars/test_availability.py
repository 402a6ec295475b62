"""The learner's own conflicts (calendars.availability.learner_conflicts) and their dismissal
(calendars.services.conflicts): which events count as busy, when two times overlap, what a
dismissal holds to, whose data is read."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Profile
from calendars.availability import conflict_fingerprint, learner_conflicts
from calendars.models import Calendar, CalendarEvent, CalendarIntegration, ConflictDismissal
from calendars.services.conflicts import conflict_dismiss, conflict_restore
from formations.models import Formation

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NINE = datetime(2027, 4, 13, 9, tzinfo=PARIS)  # a Tuesday


def conflicts_of(user, formation):
    return learner_conflicts(user=user, formations=[formation]).get(formation.pk, [])


def event_ids(user, formation):
    return [c.event_id for c in conflicts_of(user, formation)]


@pytest.fixture
def formation(learner, make_formation):
    """Tuesday 9:00-12:00 in Paris, the learner enrolled."""
    return make_formation(start=NINE, hours=3, learners=(learner,), title="Excel")


@pytest.fixture
def calendar(learner, make_calendar):
    return make_calendar(learner)


# --- what counts -------------------------------------------------------------------------


def test_a_busy_event_over_a_formation_is_a_conflict_with_its_details(
    learner, formation, calendar, make_event
):
    event = make_event(calendar, start=NINE + timedelta(hours=1), title="Dentiste")

    (conflict,) = conflicts_of(learner, formation)

    assert conflict.formation_id == formation.pk
    assert conflict.event_id == event.pk
    assert conflict.key == f"event-{event.pk}"
    assert conflict.title == "Dentiste"
    assert conflict.provider == "google"
    assert (conflict.start, conflict.end) == (event.start, event.end)
    assert not conflict.all_day
    assert not conflict.dismissed


def test_conflicts_come_in_time_order_from_every_provider(
    learner, formation, calendar, make_calendar, make_event
):
    later = make_event(calendar, start=NINE + timedelta(hours=2))
    earlier = make_event(
        make_calendar(learner, provider="outlook"), start=NINE - timedelta(hours=1), hours=2
    )

    conflicts = conflicts_of(learner, formation)

    assert [c.event_id for c in conflicts] == [earlier.pk, later.pk]
    assert [c.provider for c in conflicts] == ["outlook", "google"]


def test_an_all_day_event_on_the_formations_day_is_a_conflict(
    learner, formation, calendar, make_event
):
    event = make_event(calendar, all_day=date(2027, 4, 13))

    (conflict,) = conflicts_of(learner, formation)

    assert conflict.event_id == event.pk
    assert conflict.all_day


@pytest.mark.parametrize(
    "fields",
    [
        {"response": CalendarEvent.Response.DECLINED},
        {"busy": False},
        {"status": CalendarEvent.Status.CANCELLED},
    ],
    ids=["declined", "free", "cancelled"],
)
def test_declined_free_and_cancelled_events_never_conflict(
    learner, formation, calendar, make_event, fields
):
    make_event(calendar, start=NINE, **fields)

    assert conflicts_of(learner, formation) == []


def test_invitations_not_answered_or_maybe_do_conflict(learner, formation, calendar, make_event):
    maybe = make_event(calendar, start=NINE, response=CalendarEvent.Response.TENTATIVE)
    unanswered = make_event(calendar, start=NINE, response=CalendarEvent.Response.NEEDS_ACTION)

    assert sorted(event_ids(learner, formation)) == sorted([maybe.pk, unanswered.pk])


def test_events_of_calendars_not_imported_never_conflict(
    learner, formation, make_calendar, make_event
):
    make_event(make_calendar(learner, external_id="work", import_enabled=False), start=NINE)
    outlook = make_calendar(learner, provider="outlook")
    make_event(outlook, start=NINE)
    CalendarIntegration.objects.filter(pk=outlook.integration_id).update(import_enabled=False)

    assert conflicts_of(learner, formation) == []


def test_events_of_calendars_hidden_on_the_calendar_page_still_conflict(
    learner, formation, calendar, make_event
):
    event = make_event(calendar, start=NINE)
    Calendar.objects.filter(pk=calendar.pk).update(shown=False)

    assert event_ids(learner, formation) == [event.pk]


def test_events_that_only_touch_the_formation_do_not_conflict(
    learner, formation, calendar, make_event
):
    make_event(calendar, start=NINE - timedelta(hours=1))  # ends at 9:00
    make_event(calendar, start=formation.end)  # starts at 12:00

    assert conflicts_of(learner, formation) == []


def test_a_cancelled_formation_has_no_conflicts(learner, formation, calendar, make_event):
    make_event(calendar, start=NINE)
    Formation.objects.filter(pk=formation.pk).update(status=Formation.Status.CANCELLED)
    formation.refresh_from_db()

    assert learner_conflicts(user=learner, formations=[formation]) == {}


def test_another_learners_events_never_count(
    learner, formation, make_user, make_calendar, make_event
):
    other = make_user()
    formation.enrollments.create(learner=other)
    make_event(make_calendar(other), start=NINE, title="Chez l'autre")

    assert conflicts_of(learner, formation) == []
    assert len(conflicts_of(other, formation)) == 1


def test_not_sharing_with_staff_still_shows_the_learner_their_own_conflicts(
    learner, formation, calendar, make_event
):
    Profile.objects.create(user=learner, share_busy=False)
    event = make_event(calendar, start=NINE)

    assert event_ids(learner, formation) == [event.pk]


def test_two_queries_whatever_the_number_of_formations(
    learner, calendar, make_formation, make_event
):
    formations = [
        make_formation(start=NINE + timedelta(days=n), learners=(learner,)) for n in range(60)
    ]
    for formation in formations[::3]:
        make_event(calendar, start=formation.start)

    with CaptureQueriesContext(connection) as queries:
        found = learner_conflicts(user=learner, formations=formations)

    assert len(queries) == 2
    assert sorted(found) == sorted(f.pk for f in formations[::3])


def test_a_thousand_formations_are_looked_at_in_one_query(learner, calendar, make_event):
    """Not one condition per formation: SQLite refuses expressions past a depth of 1,000."""
    start = datetime(2027, 1, 4, 9, tzinfo=UTC)
    formations = [
        Formation(pk=n + 1, title="", start=start + timedelta(days=n),
                  end=start + timedelta(days=n, hours=3))
        for n in range(1200)
    ]  # fmt: skip
    event = make_event(calendar, start=start + timedelta(days=1000, hours=1))
    make_event(calendar, start=start + timedelta(days=1000, hours=5))  # between two

    found = learner_conflicts(user=learner, formations=formations)

    assert {pk: [c.event_id for c in found[pk]] for pk in found} == {1001: [event.pk]}


# --- "je m'en occupe" --------------------------------------------------------------------


def test_a_dismissed_conflict_says_so_and_can_be_restored(learner, formation, calendar, make_event):
    event = make_event(calendar, start=NINE)

    assert conflict_dismiss(user=learner, formation_id=formation.pk, event_id=event.pk)
    assert [c.dismissed for c in conflicts_of(learner, formation)] == [True]

    conflict_restore(user=learner, formation_id=formation.pk, event_id=event.pk)
    assert [c.dismissed for c in conflicts_of(learner, formation)] == [False]


def test_dismissing_twice_keeps_one_dismissal(learner, formation, calendar, make_event):
    event = make_event(calendar, start=NINE)

    for _ in range(2):
        assert conflict_dismiss(user=learner, formation_id=formation.pk, event_id=event.pk)

    assert ConflictDismissal.objects.count() == 1


def test_a_dismissed_conflict_comes_back_when_the_event_moves(
    learner, formation, calendar, make_event
):
    event = make_event(calendar, start=NINE)
    conflict_dismiss(user=learner, formation_id=formation.pk, event_id=event.pk)

    CalendarEvent.objects.filter(pk=event.pk).update(
        start=NINE + timedelta(minutes=30), end=NINE + timedelta(minutes=90)
    )

    assert [c.dismissed for c in conflicts_of(learner, formation)] == [False]


def test_a_dismissed_conflict_comes_back_when_the_formation_moves(
    learner, formation, calendar, make_event
):
    event = make_event(calendar, start=NINE)
    conflict_dismiss(user=learner, formation_id=formation.pk, event_id=event.pk)

    formation.end += timedelta(hours=1)
    formation.save()
    formation.refresh_from_db()

    assert [c.dismissed for c in conflicts_of(learner, formation)] == [False]


def test_a_dismissal_holds_whichever_zone_the_formations_times_are_written_in(
    learner, formation, calendar, make_event
):
    """The formation here is the one created, its times in Paris time; the database gives
    them back in UTC: the same instants, the same conflict."""
    event = make_event(calendar, start=NINE)
    conflict_dismiss(user=learner, formation_id=formation.pk, event_id=event.pk)

    assert formation.start.tzinfo == PARIS
    assert [c.dismissed for c in conflicts_of(learner, formation)] == [True]


def test_the_fingerprint_is_of_the_instants():
    utc = [NINE.astimezone(UTC) + timedelta(hours=n) for n in range(4)]
    paris = [moment.astimezone(PARIS) for moment in utc]

    assert conflict_fingerprint(*utc) == conflict_fingerprint(*paris)
    assert conflict_fingerprint(*utc) != conflict_fingerprint(*utc[:3], utc[3] + timedelta(1))


def test_only_a_real_conflict_of_the_learners_own_can_be_dismissed(
    learner, formation, calendar, make_user, make_formation, make_calendar, make_event
):
    other = make_user()
    event = make_event(calendar, start=NINE)
    elsewhere = make_event(calendar, start=NINE + timedelta(days=1))
    theirs = make_event(make_calendar(other), start=NINE)
    their_formation = make_formation(start=NINE, learners=(other,))
    declined = make_event(calendar, start=NINE, response=CalendarEvent.Response.DECLINED)

    for formation_id, event_id in [
        (formation.pk, theirs.pk),  # someone else's event
        (their_formation.pk, event.pk),  # someone else's formation
        (formation.pk, elsewhere.pk),  # no overlap
        (formation.pk, declined.pk),  # not busy
        (formation.pk, 999_999),
    ]:
        assert not conflict_dismiss(user=learner, formation_id=formation_id, event_id=event_id)
    assert not ConflictDismissal.objects.exists()


def test_restoring_touches_only_the_learners_own_dismissals(
    learner, formation, calendar, make_user, make_calendar, make_event
):
    other = make_user()
    formation.enrollments.create(learner=other)
    theirs = make_event(make_calendar(other), start=NINE)
    conflict_dismiss(user=other, formation_id=formation.pk, event_id=theirs.pk)

    conflict_restore(user=learner, formation_id=formation.pk, event_id=theirs.pk)

    assert ConflictDismissal.objects.filter(user=other).count() == 1
