"""A task delivered again after its worker died mid-sync (tests/workers/ kill real workers):
the round it had started cleared its request, yet covered nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from calendars import locking
from calendars.models import CalendarIntegration, SyncRun
from calendars.sync import results, runs
from calendars.sync.runs import integration_run
from tests.calendars.connect_helpers import connect


@pytest.fixture
def integration(sandbox_settings, learner):
    return connect(sandbox_settings, learner, "google")


def _open_run(integration):
    """What a worker killed in the middle of a round leaves: its run open, the request that
    sent its task cleared when the round began."""
    CalendarIntegration.objects.filter(pk=integration.pk).update(sync_requested_at=None)
    return SyncRun.objects.create(
        integration=integration, trigger=SyncRun.Trigger.MANUAL, direction=SyncRun.Direction.BOTH
    )


def test_a_requested_sync_whose_round_was_cut_off_runs_it_again(integration):
    cut = _open_run(integration)

    run = integration_run(
        integration_id=integration.pk, trigger=SyncRun.Trigger.MANUAL, requested=True
    )

    assert run is not None and run.succeeded
    cut.refresh_from_db()
    assert cut.finished_at is not None and cut.error == "Interrompue avant la fin."


def test_a_requested_sync_covered_by_a_finished_round_does_nothing(integration):
    finished = _open_run(integration)
    runs._finish(finished, results.ImportResult(), results.ExportResult(), error="")

    run = integration_run(
        integration_id=integration.pk, trigger=SyncRun.Trigger.MANUAL, requested=True
    )

    assert run is None
    assert list(SyncRun.objects.filter(integration=integration)) == [finished]


@pytest.mark.django_db(transaction=True)
def test_a_requested_sync_covered_by_a_round_under_way_does_nothing(integration, monkeypatch):
    monkeypatch.setattr(runs, "CUT_OFF_LOCK_WAIT", 0.2, raising=False)
    under_way = _open_run(integration)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:  # the worker running that round, in another session
        try:
            with locking.integration_lock(integration.pk, wait=0) as acquired:
                assert acquired
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(timeout=10)
    try:
        run = integration_run(
            integration_id=integration.pk, trigger=SyncRun.Trigger.MANUAL, requested=True
        )
    finally:
        release.set()
        holder.join(timeout=10)

    assert run is None
    assert list(SyncRun.objects.filter(integration=integration)) == [under_way]
    integration.refresh_from_db()
    assert integration.sync_requested_at is None  # nothing more asked of the round
