"""The sync locks: held by one holder at a time, re-entrant for that holder, and a typed
timeout for everyone else once their wait runs out. Run against SQLite (process locks) and,
in CI, PostgreSQL (advisory locks, one session per thread)."""

from __future__ import annotations

import time

import pytest

from calendars.errors import LockTimeout
from calendars.locking import calendar_import_lock, integration_lock, integration_lock_free
from tests.calendars.calendar_helpers import held_elsewhere


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("take", [calendar_import_lock, integration_lock])
def test_a_lock_held_elsewhere_times_out_with_a_typed_error(take):
    with held_elsewhere(take, 41, wait=0):
        started = time.monotonic()
        with pytest.raises(LockTimeout) as refused:
            take(41, wait=0.3)
        assert time.monotonic() - started >= 0.3
        assert refused.value.wait == 0.3
        with take(42, wait=0):  # another key is free
            pass
    with take(41, wait=0):  # released by its holder
        pass


@pytest.mark.django_db(transaction=True)
def test_the_holder_takes_its_lock_again():
    with integration_lock(7, wait=0), integration_lock(7, wait=0):
        assert integration_lock_free(7, wait=0)  # its own holder may take it
    with held_elsewhere(integration_lock, 7, wait=0):
        assert not integration_lock_free(7, wait=0.1)
    assert integration_lock_free(7, wait=0)
