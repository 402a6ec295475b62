"""A worker killed in the middle of a sync: its task is delivered again (late acknowledgement),
and the sync it finishes leaves every formation in the learner's calendar exactly once and
the imported events exactly the provider's.

The sandbox answers the provider's batch endpoint slowly, so that the worker dies with write
requests in flight (they are carried out afterwards, their answers lost) and others never
sent."""

from __future__ import annotations

import os
import signal
import time

import pytest

from calendars.models import SyncRun
from calendars.tasks import dispatch_sync
from tests.calendars.connect_helpers import connect
from tests.workers.helpers import (
    INTERRUPTED,
    assert_each_formation_once,
    assert_imports_match,
    wait_for,
    whole_minute,
)

PROVIDERS = ["google", "outlook"]
BATCH = {"google": "google.batch", "outlook": "graph.batch"}
# Google takes 50 writes a batch, one batch at a time; Outlook 20, four batches at once. With
# these counts, when the first batches are in flight, others are still to be sent.
FORMATIONS = {"google": 60, "outlook": 90}
IN_FLIGHT = {"google": 1, "outlook": 4}
DELAY = 3.0  # seconds the sandbox holds each batch before carrying it out
VISIBILITY_TIMEOUT = 5


def _learner_with_formations(workers, sandbox, make_user, make_formation, provider):
    with workers.inline():
        learner = make_user()
        formations = [
            make_formation(start=whole_minute(1 + i % 30, 8 + i % 10), learners=(learner,))
            for i in range(FORMATIONS[provider])
        ]
        integration = connect(sandbox, learner, provider)
    return integration, formations


def _sync_until_writes_are_in_flight(workers, sandbox, integration, provider):
    """Sends a sync and returns its run once it is open and its first write batches have
    reached the (slow) sandbox; and the time by which those batches will have been carried
    out."""
    sandbox.add_fault("slow", endpoint=BATCH[provider], delay=DELAY, times=0)
    dispatch_sync(integration.pk, SyncRun.Trigger.MANUAL)

    def in_flight():
        run = SyncRun.objects.filter(integration=integration, finished_at__isnull=True).first()
        return run if run and sandbox.count(BATCH[provider]) >= IN_FLIGHT[provider] else None

    run = wait_for(in_flight, timeout=60, what=lambda: f"no write in flight\n{workers.logs()}")
    return run, time.monotonic() + DELAY + 2.0


def _wait_until(moment: float) -> None:
    """The killed process's requests are still held by the sandbox until `moment`: whatever
    they write must be there before the calendar is checked."""
    time.sleep(max(0.0, moment - time.monotonic()))


def _assert_recovered(sandbox, integration, formations, cut):
    cut.refresh_from_db()
    assert cut.finished_at is not None and cut.error == INTERRUPTED
    after = SyncRun.objects.filter(integration=integration, started_at__gt=cut.started_at)
    assert after.exists()
    assert [run.error for run in after] == ["" for _ in after]
    assert_each_formation_once(sandbox, integration, formations)
    assert_imports_match(sandbox, integration)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_sync_cut_off_by_a_killed_worker_is_delivered_again_and_finished_once(
    workers, sandbox_settings, make_user, make_formation, provider
):
    integration, formations = _learner_with_formations(
        workers, sandbox_settings, make_user, make_formation, provider
    )
    first = workers.start()
    cut, writes_done = _sync_until_writes_are_in_flight(
        workers, sandbox_settings, integration, provider
    )

    first.kill()
    sandbox_settings.clear_faults()  # the batches in flight keep their delay

    # The task was never acknowledged: Redis keeps it for another worker.
    unacked = workers.broker.unacked()
    assert len(unacked) == 1 and workers.broker.waiting() == 0
    assert SyncRun.objects.filter(pk=cut.pk, finished_at__isnull=True).exists()
    # A worker takes back the messages delivered longer than its visibility timeout ago when
    # it starts (then only every ~100 s, kombu's default sweep): the new one starts after.
    delivered = max(unacked.values())  # the broker's clock: time.time()
    time.sleep(max(0.0, delivered + VISIBILITY_TIMEOUT + 0.5 - time.time()))
    workers.start(visibility_timeout=VISIBILITY_TIMEOUT)
    workers.wait_idle()
    _wait_until(writes_done)
    workers.wait_idle()

    _assert_recovered(sandbox_settings, integration, formations, cut)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_sync_cut_off_by_a_killed_pool_process_runs_again_at_once(
    workers, sandbox_settings, make_user, make_formation, provider
):
    integration, formations = _learner_with_formations(
        workers, sandbox_settings, make_user, make_formation, provider
    )
    worker = workers.start()
    cut, writes_done = _sync_until_writes_are_in_flight(
        workers, sandbox_settings, integration, provider
    )

    [child] = worker.children()
    os.kill(child, signal.SIGKILL)
    sandbox_settings.clear_faults()

    # Rejected and requeued by the worker (task_reject_on_worker_lost), taken by a new pool
    # process without waiting for any visibility timeout.
    workers.wait_idle(timeout=60)
    _wait_until(writes_done)
    workers.wait_idle()

    assert worker.alive()
    assert "WorkerLostError" in worker.output()
    _assert_recovered(sandbox_settings, integration, formations, cut)
