"""The sync locks: held by one holder at a time, re-entrant for that holder, and a typed
timeout for everyone else once their wait runs out. Run against SQLite (process locks) and,
in CI, PostgreSQL (advisory locks, one session per thread)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from calendars.errors import LockTimeout
from calendars.locking import calendar_import_lock, integration_lock, integration_lock_free


def _held_elsewhere(take, key: int):
    """Holds a lock from another thread (another database session on PostgreSQL) until the
    returned event is set."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with take(key, wait=0):
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(timeout=10)
    return thread, release


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("take", [calendar_import_lock, integration_lock])
def test_a_lock_held_elsewhere_times_out_with_a_typed_error(take):
    thread, release = _held_elsewhere(take, 41)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout) as refused:
            take(41, wait=0.3)
        assert time.monotonic() - started >= 0.3
        assert refused.value.wait == 0.3
        with take(42, wait=0):  # another key is free
            pass
    finally:
        release.set()
        thread.join()
    with take(41, wait=0):  # released by its holder
        pass


@pytest.mark.django_db(transaction=True)
def test_the_holder_takes_its_lock_again():
    with integration_lock(7, wait=0), integration_lock(7, wait=0):
        assert integration_lock_free(7, wait=0)  # its own holder may take it
    thread, release = _held_elsewhere(integration_lock, 7)
    try:
        assert not integration_lock_free(7, wait=0.1)
    finally:
        release.set()
        thread.join()
    assert integration_lock_free(7, wait=0)
