"""For staff: which of a formation's learners are busy, free or unknown, counts for a page of
formations, and free slots ranked (calendars/availability.py)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calendars.availability import (
    MAX_SPANS,
    WORK_HOURS,
    formation_availability,
    formations_busy_counts,
    free_slots,
)
from calendars.models import Calendar, CalendarEvent, CalendarIntegration
from formations.models import Enrollment
from tests.calendars.availability_helpers import busy, connected, stop_sharing

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
MONTREAL = zoneinfo.ZoneInfo("America/Montreal")
MONDAY = date(2030, 3, 4)
# Monday 4 March 2030, 9:00 to 12:00 in Paris.
NINE = datetime(2030, 3, 4, 9, tzinfo=PARIS)


@pytest.fixture
def people(make_user):
    """Ana and Bruno share their calendars, Chloé has none connected."""
    return (
        make_user("ana", first_name="Ana", last_name="Alves"),
        make_user("bruno", first_name="Bruno", last_name="Bellec"),
        make_user("chloe", first_name="Chloé", last_name="Caron"),
    )


@pytest.fixture
def formation(make_formation, people):
    return make_formation(start=NINE, hours=3, learners=people)


def test_busy_learners_are_named_the_others_counted(formation, people):
    ana, bruno, _ = people
    busy(connected(ana), NINE + timedelta(hours=1))
    connected(bruno)

    availability = formation_availability(formation=formation)

    assert [(learner.pk, learner.name) for learner in availability.busy] == [(ana.pk, "Ana Alves")]
    assert (availability.free, availability.unknown, availability.known) == (1, 1, 2)


def test_availability_at_another_time(formation, people):
    ana, bruno, _ = people
    busy(connected(ana), NINE + timedelta(days=1))
    connected(bruno)

    tomorrow = formation_availability(
        formation=formation, start=NINE + timedelta(days=1), end=NINE + timedelta(days=1, hours=3)
    )

    assert [learner.name for learner in tomorrow.busy] == ["Ana Alves"]
    assert formation_availability(formation=formation).busy == []


def test_a_learner_who_stopped_sharing_is_unknown_and_not_named(formation, people):
    ana, bruno, _ = people
    busy(connected(ana), NINE)
    busy(connected(bruno), NINE)
    stop_sharing(ana)

    availability = formation_availability(formation=formation)

    assert [learner.name for learner in availability.busy] == ["Bruno Bellec"]
    assert (availability.free, availability.unknown) == (0, 2)


def test_calendars_not_imported_say_nothing(formation, people):
    """Only a calendar whose events are imported, and whose first import ended, tells when
    its owner is free: a connected account whose calendars are all left out, one that must be
    reconnected, or one still importing for the first time leave the learner unknown."""
    ana, bruno, chloe = people
    left_out = connected(ana)
    Calendar.objects.filter(pk=left_out.pk).update(import_enabled=False)
    first_import = connected(bruno)
    Calendar.objects.filter(pk=first_import.pk).update(last_imported_at=None)
    connected(chloe, status=CalendarIntegration.Status.NEEDS_RECONNECT)

    availability = formation_availability(formation=formation)

    assert (availability.busy, availability.free, availability.unknown) == ([], 0, 3)


def test_an_account_importing_nothing_leaves_the_learner_unknown(formation, people):
    ana, *_ = people
    busy(connected(ana, import_enabled=False), NINE)

    assert formation_availability(formation=formation).unknown == 3


def test_only_busy_time_counts(formation, people):
    """Free, cancelled and declined events, and one ending as the formation starts, leave
    the learner free; one from a calendar not imported too."""
    ana, bruno, _ = people
    calendar = connected(ana)
    busy(calendar, NINE, busy=False)
    busy(calendar, NINE, status=CalendarEvent.Status.CANCELLED)
    busy(calendar, NINE, response=CalendarEvent.Response.DECLINED)
    busy(calendar, NINE - timedelta(hours=1))
    busy(calendar, NINE + timedelta(hours=3))
    other = connected(ana)
    Calendar.objects.filter(pk=other.pk).update(import_enabled=False)
    busy(other, NINE)
    busy(connected(bruno), NINE - timedelta(hours=1), hours=1.5, response="tentative")

    availability = formation_availability(formation=formation)

    assert [learner.name for learner in availability.busy] == ["Bruno Bellec"]
    assert availability.free == 1


def test_an_all_day_event_makes_the_learner_busy(formation, people):
    ana, *_ = people
    CalendarEvent.objects.create(
        calendar=connected(ana),
        external_id="holiday",
        all_day=True,
        start_date=MONDAY,
        end_date=MONDAY + timedelta(days=1),
        start=datetime(2030, 3, 4, tzinfo=PARIS),
        end=datetime(2030, 3, 5, tzinfo=PARIS),
    )

    assert [learner.name for learner in formation_availability(formation=formation).busy] == [
        "Ana Alves"
    ]


def test_a_formation_without_learners(make_formation):
    availability = formation_availability(formation=make_formation(start=NINE))
    assert (availability.busy, availability.free, availability.unknown) == ([], 0, 0)


# --- a page of formations --------------------------------------------------------------------


def test_busy_counts_for_a_page_of_formations(make_formation, people):
    ana, bruno, chloe = people
    morning = make_formation(start=NINE, hours=3, learners=(ana, bruno, chloe))
    afternoon = make_formation(start=NINE + timedelta(hours=5), hours=3, learners=(ana, bruno))
    nobody = make_formation(start=NINE + timedelta(days=1))
    calendar = connected(ana)
    busy(calendar, NINE + timedelta(hours=2))  # the morning
    busy(calendar, NINE + timedelta(hours=6))  # the afternoon
    busy(connected(bruno), NINE + timedelta(hours=2), hours=4)  # both
    busy(connected(chloe), NINE)
    stop_sharing(chloe)

    counts = formations_busy_counts([morning, afternoon, nobody])

    assert counts == {morning.pk: 2, afternoon.pk: 2, nobody.pk: 0}
    assert formations_busy_counts([]) == {}


def test_busy_counts_for_a_page_of_many_formations(make_formation, people):
    """Past MAX_SPANS separate times, the events are fetched over one span covering them all
    and sorted out here: the counts are the same."""
    ana, bruno, _ = people
    formations = [
        make_formation(start=NINE + timedelta(days=d, hours=h), hours=1, learners=(ana, bruno))
        for d in range(MAX_SPANS // 2 + 1)
        for h in (0, 4)
    ]
    calendar = connected(ana)
    for formation in formations[::3]:
        busy(calendar, formation.start + timedelta(minutes=30))
    busy(calendar, NINE + timedelta(hours=2))  # between two formations: over none
    busy(connected(bruno), formations[-1].start - timedelta(minutes=30))

    counts = formations_busy_counts(formations)

    assert len(formations) > MAX_SPANS
    expected = {f.pk: int(n % 3 == 0) for n, f in enumerate(formations)}
    expected[formations[-1].pk] += 1
    assert counts == expected


def _statements(work) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        work()
    return [query["sql"] for query in captured.captured_queries]


def test_the_queries_stay_the_same_however_many_learners_and_events(make_formation, make_user):
    """Same statements, word for word, with 2 learners or 20 and their events: as many, and
    none listing the learners (a statement has a limited number of parameters)."""
    formations = [make_formation(start=NINE + timedelta(days=d), hours=3) for d in range(3)]

    def enrol(count: int) -> None:
        for _ in range(count):
            learner = make_user()
            calendar = connected(learner)
            for formation in formations:
                Enrollment.objects.create(learner=learner, formation=formation)
                busy(calendar, formation.start)
                busy(calendar, formation.start + timedelta(days=7))

    def work() -> None:
        formation_availability(formation=formations[0])
        formations_busy_counts(formations)
        free_slots(formation=formations[0], since=MONDAY, until=MONDAY + timedelta(days=28))

    enrol(2)
    few = _statements(work)
    enrol(18)
    many = _statements(work)

    assert len(few) == 9
    assert many == few
    assert formations_busy_counts(formations) == dict.fromkeys([f.pk for f in formations], 20)


# --- free slots ------------------------------------------------------------------------------


def test_a_slot_where_everyone_is_free_comes_first(formation, people):
    """Monday from 9:00 to 14:00, Ana is busy: Monday 14:00 (everyone free) comes before
    Monday 9:00, and the slots Ana cannot make come last."""
    ana, bruno, _ = people
    busy(connected(ana), NINE, hours=5)
    connected(bruno)

    slots, unknown = free_slots(
        formation=formation, since=MONDAY, until=MONDAY + timedelta(days=1), limit=20
    )

    assert unknown == 1
    assert [(s.start.hour, s.start.minute, s.free, s.busy) for s in slots] == [
        (14, 0, 2, 0),  # 14:00-17:00
        (9, 0, 1, 1),  # the only one of the rest that overlaps none kept before it
    ]
    assert all(s.unknown == 1 for s in slots)


def test_suggested_slots_do_not_overlap(formation, people):
    connected(people[0])
    slots, _ = free_slots(formation=formation, since=MONDAY, until=MONDAY + timedelta(days=2))
    starts = [s.start.astimezone(PARIS).replace(tzinfo=None) for s in slots]
    assert starts == [
        datetime(2030, 3, 4, 9), datetime(2030, 3, 4, 12), datetime(2030, 3, 4, 15),
        datetime(2030, 3, 5, 9), datetime(2030, 3, 5, 12), datetime(2030, 3, 5, 15),
    ]  # fmt: skip


def test_no_slot_on_weekends_nor_out_of_hours(formation, people):
    connected(people[0])
    slots, _ = free_slots(
        formation=formation, since=MONDAY, until=MONDAY + timedelta(days=14), limit=1000
    )
    assert len(slots) == 10 * 3
    for slot in slots:
        local_start, local_end = slot.start.astimezone(PARIS), slot.end.astimezone(PARIS)
        assert local_start.weekday() < 5
        assert local_start.time() >= WORK_HOURS[0]
        assert local_end.time() <= WORK_HOURS[1]
        assert local_end.date() == local_start.date()
        assert slot.end - slot.start == timedelta(hours=3)


def test_slots_are_in_the_formations_own_zone_across_a_time_change(make_formation, people):
    """A formation in Montréal: 9:00 there, which is 14:00 UTC before the clocks change
    (Sunday 14 March 2027) and 13:00 after."""
    ana, *_ = people
    formation = make_formation(
        start=datetime(2027, 3, 1, 9, tzinfo=MONTREAL),
        hours=8,
        time_zone="America/Montreal",
        learners=(ana,),
    )
    connected(ana)

    slots, _ = free_slots(formation=formation, since=date(2027, 3, 12), until=date(2027, 3, 16))

    assert [s.start.astimezone(UTC) for s in slots] == [
        datetime(2027, 3, 12, 14, tzinfo=UTC),  # Friday
        datetime(2027, 3, 15, 13, tzinfo=UTC),  # Monday, after the change
    ]
    # 16:30 in Montréal, 22:30 in Paris: within Montréal's working day, not Paris's.
    busy(connected(ana), datetime(2027, 3, 12, 16, 30, tzinfo=MONTREAL))
    slots, _ = free_slots(formation=formation, since=date(2027, 3, 12), until=date(2027, 3, 16))
    assert [(s.start.astimezone(MONTREAL).day, s.free, s.busy) for s in slots] == [
        (15, 1, 0),
        (12, 0, 1),
    ]


def test_no_slot_before_now(formation, people):
    connected(people[0])
    now = datetime(2030, 3, 4, 10, 15, tzinfo=PARIS)
    slots, _ = free_slots(formation=formation, since=MONDAY, until=MONDAY + timedelta(days=1),
                          now=now, limit=20)  # fmt: skip
    assert [s.start.astimezone(PARIS).time().isoformat("minutes") for s in slots] == [
        "10:30",
        "13:30",
    ]


def test_a_formation_longer_than_a_working_day_gets_no_slot(make_formation, people):
    formation = make_formation(start=NINE, hours=24, learners=people)
    slots, unknown = free_slots(formation=formation, since=MONDAY, until=MONDAY + timedelta(7))
    assert (slots, unknown) == ([], 3)


def test_learners_without_a_calendar_are_unknown_in_slots(formation, people):
    slots, unknown = free_slots(formation=formation, since=MONDAY, until=MONDAY + timedelta(1))
    assert unknown == 3
    assert {(s.free, s.busy, s.unknown) for s in slots} == {(0, 0, 3)}
