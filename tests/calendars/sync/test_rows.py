"""A page's new events written by one prepared INSERT: the same rows the ORM writes, and a
row another import inserted first left as it is."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calendars.models import CalendarEvent
from calendars.providers.types import RemoteEvent
from calendars.sync.rows import EVENT_FIELDS, events_insert

START = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


def _remote(external_id: str, **fields) -> RemoteEvent:
    values = {
        "title": "Comité « budget »",
        "start": START,
        "end": START + timedelta(minutes=90),
        "time_zone": "Europe/Paris",
        "ical_uid": f"{external_id}@example.com",
        "location": "Salle 4",
        "online_url": "https://meet.example.com/abc",
        "series_id": "series9",
        "change_marker": '"3391"',
        "html_link": "https://calendar.example.com/e",
        "response": "tentative",
        "busy": False,
        "description": "never kept",
        **fields,
    }
    return RemoteEvent(external_id=external_id, **values)


def test_inserted_rows_read_back_as_the_orm_writes_them(make_calendar, learner):
    calendar = make_calendar(learner)
    timed = _remote("timed")
    all_day = _remote(
        "all-day",
        all_day=True,
        start_date=date(2026, 3, 2),
        end_date=date(2026, 3, 4),
        start=datetime(2026, 3, 2, tzinfo=UTC),
        end=datetime(2026, 3, 4, tzinfo=UTC),
    )
    long_link = _remote("long-link", html_link="https://x.example.com/" + "a" * 2100)
    now = timezone.now()

    events_insert(calendar_id=calendar.pk, events=[timed, all_day, long_link], generation=3,
                  now=now)  # fmt: skip

    for remote in (timed, all_day, long_link):
        copied = {name: getattr(remote, name) for name in EVENT_FIELDS}
        orm = CalendarEvent(
            calendar=calendar, external_id=f"orm-{remote.external_id}", generation=3, **copied
        )
        if len(orm.html_link) > 2000:
            orm.html_link = ""
        orm.save()
        ours = CalendarEvent.objects.get(calendar=calendar, external_id=remote.external_id)
        theirs = CalendarEvent.objects.get(pk=orm.pk)
        for name in [*EVENT_FIELDS, "generation", "description"]:
            assert getattr(ours, name) == getattr(theirs, name), name
        # As the database holds them (SQLite keeps times as text: the same text).
        assert _stored(ours.pk) == _stored(theirs.pk)
        assert ours.updated_at == now
    # Range queries compare what the ORM wrote with what the INSERT wrote.
    instant = CalendarEvent.objects.filter(
        calendar=calendar, start__gte=START, start__lt=START + timedelta(seconds=1)
    )
    assert instant.count() == 4
    assert (
        CalendarEvent.objects.filter(
            calendar=calendar, start_date=date(2026, 3, 2), all_day=True
        ).count()
        == 2
    )


def _stored(pk: int) -> tuple:
    columns = [CalendarEvent._meta.get_field(name).column for name in EVENT_FIELDS]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(quote(c) for c in columns)} "  # noqa: S608
            f"FROM {quote(CalendarEvent._meta.db_table)} WHERE id = %s",
            [pk],
        )
        return cursor.fetchone()


def test_a_row_another_import_inserted_first_is_left_as_it_is(make_calendar, make_event, learner):
    calendar = make_calendar(learner)
    other = make_calendar(learner, external_id="team")
    first = make_event(calendar, external_id="shared", title="Inséré par l'autre import")
    elsewhere = make_event(other, external_id="fresh", title="Autre calendrier")

    with CaptureQueriesContext(connection) as queries:
        events_insert(calendar_id=calendar.pk,
                      events=[_remote("shared"), _remote("fresh"), _remote("new")],
                      generation=1, now=timezone.now())  # fmt: skip

    assert len(queries.captured_queries) == 1  # one statement for the page
    first.refresh_from_db()
    assert first.title == "Inséré par l'autre import"
    assert set(calendar.events.values_list("external_id", flat=True)) == {"shared", "fresh", "new"}
    elsewhere.refresh_from_db()  # the same id in another calendar is no conflict
    assert elsewhere.title == "Autre calendrier"


def test_nothing_to_insert_sends_nothing(make_calendar, learner):
    calendar = make_calendar(learner)
    with CaptureQueriesContext(connection) as queries:
        events_insert(calendar_id=calendar.pk, events=[], generation=1, now=timezone.now())
    assert not queries.captured_queries


def test_an_event_a_page_lists_twice_is_inserted_once(make_calendar, learner):
    calendar = make_calendar(learner)

    events_insert(calendar_id=calendar.pk,
                  events=[_remote("twice", title="Premier"), _remote("once"),
                          _remote("twice", title="Second")],
                  generation=1, now=timezone.now())  # fmt: skip

    assert sorted(calendar.events.values_list("external_id", "title")) == [
        ("once", "Comité « budget »"),
        ("twice", "Premier"),
    ]


def test_a_page_of_many_rows_is_one_statement(make_calendar, learner):
    calendar = make_calendar(learner)
    events = [_remote(f"e{number}", start=START + timedelta(hours=number)) for number in range(300)]

    with CaptureQueriesContext(connection) as queries:
        events_insert(calendar_id=calendar.pk, events=events, generation=1, now=timezone.now())

    assert len(queries.captured_queries) == 1
    assert calendar.events.count() == 300
    assert calendar.events.get(external_id="e299").start == START + timedelta(hours=299)
