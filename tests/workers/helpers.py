"""What the worker tests look at: polling, the learner's calendar in the sandbox, sync runs."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from calendars.models import CalendarIntegration, FormationExport, SyncRun
from formations.models import Formation
from sandbox.core import Sandbox
from tests.calendars.calendar_helpers import events_of, expected_ids, imported_ids

INTERRUPTED = "Interrompue avant la fin."


def whole_minute(days: float, hour: int = 9) -> datetime:
    """A formation's start: calendars keep times to the second, formations to the minute."""
    return (timezone.now() + timedelta(days=days)).replace(
        hour=hour, minute=30, second=0, microsecond=0
    )


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str | Callable[[], str]) -> Any:
    """Polls `condition` until it returns something true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f} s: {what() if callable(what) else what}")
        time.sleep(0.05)


def events_by_formation(
    sandbox: Sandbox, integration: CalendarIntegration, formations: Iterable[Formation]
) -> dict[str, list[Any]]:
    """Formation uid → the live events carrying its marker in the calendar receiving the
    learner's formations, read under the store's lock (the sandbox serves other threads)."""
    account = sandbox.store.account(integration.account_email)
    target = integration.calendars.get(is_export_target=True).external_id
    with sandbox.store.lock:
        remote = account.calendars[target]
        return {str(f.uid): events_of(remote, f, integration.provider) for f in formations}


def assert_each_formation_once(
    sandbox: Sandbox, integration: CalendarIntegration, formations: list[Formation]
) -> None:
    """Every formation exactly once in the learner's calendar, with its current title and
    times, and the export rows naming those very events."""
    found = events_by_formation(sandbox, integration, formations)
    counts = {uid: len(events) for uid, events in found.items()}
    assert counts == {str(f.uid): 1 for f in formations}, {
        uid: n for uid, n in counts.items() if n != 1
    }
    for formation in formations:
        formation.refresh_from_db()
        [event] = found[str(formation.uid)]
        written = (event.title, event.start_utc(), event.end_utc())
        assert written == (formation.title, formation.start, formation.end), formation.uid
    rows = FormationExport.objects.filter(integration=integration)
    assert {str(row.formation_uid): row.external_id for row in rows} == {
        uid: events[0].id for uid, events in found.items()
    }
    assert all(row.remote_version and not row.last_error for row in rows)


def assert_imports_match(sandbox: Sandbox, integration: CalendarIntegration) -> None:
    """The imported rows are exactly the provider's events: none missing, none twice."""
    account = sandbox.store.account(integration.account_email)
    with sandbox.store.lock:
        for calendar in integration.calendars.filter(import_enabled=True):
            assert imported_ids(calendar) == expected_ids(account, calendar, integration.provider)


def assert_never_overlapping(runs: Iterable[SyncRun]) -> None:
    ordered = sorted(runs, key=lambda run: run.started_at)
    assert all(run.finished_at is not None for run in ordered)
    for before, after in itertools.pairwise(ordered):
        assert before.finished_at <= after.started_at, (
            f"run {before.pk} ({before.started_at:%T.%f}–{before.finished_at:%T.%f}) overlaps "
            f"run {after.pk} ({after.started_at:%T.%f}–{after.finished_at:%T.%f})"
        )
