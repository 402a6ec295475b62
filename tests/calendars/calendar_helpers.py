"""The learner's calendar as the tests read it: the events the sandbox holds (imports expected,
formations exported), the rows imported here, waiting for what arrives by itself, and a lock
held by somebody else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

from calendars.models import CalendarEvent
from calendars.providers.google.normalize import IMPORTED_TYPES
from calendars.providers.outlook.normalize import FORMATION_PROPERTY_ID

# The sandbox's endpoint that lists a calendar's events, full and incremental.
LIST_ENDPOINT = {"google": "google.events.list", "outlook": "graph.delta"}


def expected_ids(account, calendar, provider):
    """The ids of the sandbox calendar's events an import should end with."""
    remote = account.calendars[calendar.external_id]
    with_types = IMPORTED_TYPES if provider == "google" else {"default"}
    return {
        e.id
        for e in remote.events.values()
        if not e.deleted and not e.is_master and e.status != "cancelled"
        and e.event_type in with_types and not e.private_properties
        and e.end_utc() > e.start_utc()  # entries that end before they start are skipped
        and not e.transaction_id.startswith("formation-")  # exported by the application
    }  # fmt: skip


def imported_ids(calendar):
    """The ids of the events imported from the calendar."""
    return set(
        CalendarEvent.objects.filter(calendar=calendar).values_list("external_id", flat=True)
    )


def _marker_key(provider):
    return "formationId" if provider == "google" else FORMATION_PROPERTY_ID


def events_of(remote_calendar, formation, provider):
    """The live events in the learner's calendar carrying this formation's marker."""
    key = _marker_key(provider)
    return [
        e
        for e in remote_calendar.events.values()
        if not e.deleted and e.private_properties.get(key) == str(formation.uid)
    ]


def one_event(remote_calendar, formation, provider):
    events = events_of(remote_calendar, formation, provider)
    assert len(events) == 1, f"{len(events)} events for {formation}"
    return events[0]


def wait_for(condition, timeout=15.0):
    """Polls `condition` until it holds, for at most `timeout` seconds; whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@contextmanager
def held_elsewhere(take: Callable[..., Any], key: int, **options: Any) -> Iterator[None]:
    """Holds the lock `take(key, **options)` (calendars.locking) from another thread, and so,
    on PostgreSQL, from another database session (advisory locks are re-entrant within one),
    for the `with` block."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with take(key, **options):
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        yield
    finally:
        release.set()
        holder.join(timeout=10)


def at_once(count: int, work: Callable[[], Any]) -> list[Any]:
    """Runs `work` in `count` threads (database sessions on PostgreSQL) released together;
    returns what each gave, once none of them raised."""
    start = threading.Barrier(count)
    results, errors = [], []

    def run() -> None:
        try:
            start.wait()
            results.append(work())
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results
