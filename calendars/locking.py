"""Every lock the calendar integration takes, in one place.

- **Sync locks** write nothing: PostgreSQL advisory locks, shared by every process and machine
  and released by a crash too (the connection closes); on SQLite, in development, a lock of
  this process. Both are re-entrant: the session or thread holding one gets it again, so a
  sync holding its integration's lock exports under it.
  - `calendar_import_lock`: one import at a time per calendar;
  - `integration_lock`: one sync or export at a time per learner's calendar account, so that
    Outlook never sees more than one batch of 4 requests from us per mailbox.
- **Row locks** (`lock_rows`): `SELECT ... FOR UPDATE` inside a transaction, where two
  requests must not both act on what they read (a refresh token Microsoft rotates, an OAuth
  state used once). SQLite has none, but serialises writing transactions.

A sync lock is taken with a wait in seconds; when another holder keeps it longer, the one
typed timeout, `LockTimeout`, is raised before anything runs. The caller decides what that
means (another sync is bringing the calendar up to date: report it busy).

    try:
        held = integration_lock(integration.pk, wait=2.0)
    except LockTimeout:
        return busy
    with held:
        ...
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

from django.conf import settings
from django.db import connection
from django.db.models import Model, QuerySet

from calendars.errors import LockTimeout

# The first key of our PostgreSQL advisory locks (the second is the row's id).
IMPORT_NAMESPACE = 0x43414C  # "CAL": one calendar's import
INTEGRATION_NAMESPACE = 0x455850  # "EXP": one integration's sync or export
POLL = 0.05  # seconds between two tries of a PostgreSQL advisory lock

_local_locks: dict[tuple[int, int], threading.RLock] = {}
_local_locks_guard = threading.Lock()


class Held:
    """A sync lock this process holds; released on leaving its `with` block."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release

    def __enter__(self) -> Held:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._release()


def calendar_import_lock(calendar_id: int, *, wait: float = 0.0) -> Held:
    """One import at a time per calendar. By default a second one does not wait: the
    running one brings the calendar up to date anyway."""
    return _acquire("calendar import", IMPORT_NAMESPACE, calendar_id, wait)


def integration_lock(integration_id: int, *, wait: float | None = None) -> Held:
    """One sync or export at a time per integration. Waits up to `wait` seconds (default
    CALENDAR_EXPORT_LOCK_WAIT: a double click gets its answer)."""
    if wait is None:
        wait = settings.CALENDAR_EXPORT_LOCK_WAIT
    return _acquire("integration", INTEGRATION_NAMESPACE, integration_id, wait)


def integration_lock_free(integration_id: int, *, wait: float) -> bool:
    """Whether the integration's lock can be had within `wait` seconds (taken and released:
    nobody is syncing it)."""
    try:
        with integration_lock(integration_id, wait=wait):
            return True
    except LockTimeout:
        return False


def lock_rows[M: Model](queryset: QuerySet[M]) -> QuerySet[M]:
    """The rows of `queryset`, locked until the current transaction ends."""
    return queryset.select_for_update()


def _acquire(name: str, namespace: int, key: int, wait: float) -> Held:
    deadline = time.monotonic() + wait
    if connection.vendor == "postgresql":
        pair = (namespace, key % 2**31)
        while True:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", pair)
                acquired = cursor.fetchone()[0]
            if acquired:
                return Held(lambda: _advisory_unlock(pair))
            if time.monotonic() >= deadline:
                raise LockTimeout(name, wait)
            time.sleep(POLL)
    with _local_locks_guard:
        lock = _local_locks.setdefault((namespace, key), threading.RLock())
    if not (lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)):
        raise LockTimeout(name, wait)
    return Held(lock.release)


def _advisory_unlock(pair: tuple[int, int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", pair)
