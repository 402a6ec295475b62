"""Celery tasks: thin interfaces that take ids, load, and call the sync runs.

Every task is idempotent and acknowledged late (config/settings.py): one cut off by a killed
worker runs again and finishes the job without duplicating anything. Provider failures never
make a task fail: the run records them and the integration's next attempt is scheduled after
a growing delay, which `sync_due` (every minute, from beat) honours.

Send them with the `dispatch_*` helpers, which wait for the current transaction to commit.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from calendars.models import CalendarIntegration, SyncRun
from calendars.selectors import channels_due_for_renewal, formation_integrations
from calendars.sync.runs import (
    integration_channels_refresh,
    integration_run,
    integration_sync_request,
    integrations_sync_request,
)

logger = logging.getLogger(__name__)

# How many integrations `sync_due` sends per round, and over how many seconds it spreads them.
DUE_BATCH = 5000
DUE_SPREAD = 50.0


def dispatch_sync(
    integration_id: int,
    trigger: str,
    *,
    formation_uids: list[str] | None = None,
    countdown: float | None = None,
) -> None:
    """Sends a sync of the integration (or the export of some formations) once the current
    transaction commits. A full sync already waiting to run covers this one: none is sent."""
    if formation_uids is None and not integration_sync_request(integration_id=integration_id):
        return
    transaction.on_commit(
        lambda: sync_integration.apply_async(
            (integration_id, trigger),
            {"formation_uids": formation_uids, "requested": formation_uids is None},
            countdown=countdown,
        )
    )


def dispatch_propagation(formation_uid: str, learner_id: int | None = None) -> None:
    """Sends, once the current transaction commits, the task that brings the formation's
    exported events in line: for every learner (`learner_id` None) or for some. Whatever one
    transaction changes (a formation deleted with its enrollments, an enrollment moved from a
    learner to another), one task per formation goes out: the first of its commit callbacks
    sends what the transaction gathered, the others find it sent."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        propagate_formation.delay(
            formation_uid, learner_ids=None if learner_id is None else [learner_id]
        )
        return
    outermost = connection.atomic_blocks[0]
    pending = getattr(connection, "_formation_propagations", None)
    if pending is None or pending[0] is not outermost or pending[1].sent:
        pending = (outermost, _Changes())
        connection._formation_propagations = pending  # type: ignore[attr-defined]
    changes = pending[1]
    if learner_id is None or (formation_uid in changes and changes[formation_uid] is None):
        changes[formation_uid] = None  # every learner: covers any one of them
    else:
        changes.setdefault(formation_uid, set()).add(learner_id)  # type: ignore[union-attr]
    transaction.on_commit(changes.send)


class _Changes(dict[str, set[int] | None]):
    """The formations one transaction changed, and for which learners (None: all)."""

    sent = False

    def send(self) -> None:
        if self.sent:
            return
        self.sent = True
        for formation_uid, learners in self.items():
            ids = None if learners is None else sorted(learners)
            propagate_formation.delay(formation_uid, learner_ids=ids)


def dispatch_push_sync(integration_id: int) -> None:
    """A notification said something changed: one sync a little later, for the whole burst."""
    dispatch_sync(integration_id, SyncRun.Trigger.PUSH, countdown=settings.CALENDAR_PUSH_DEBOUNCE)


def dispatch_watch(integration_id: int) -> None:
    """Sends a task that renews, opens or closes the integration's push channels."""
    transaction.on_commit(lambda: watch_integration.delay(integration_id))


def run_now(
    integration_id: int,
    trigger: str,
    *,
    direction: str = SyncRun.Direction.BOTH,
    formation_uids: set[str] | None = None,
) -> SyncRun | None:
    """Runs the sync here and now, for whoever waits for its outcome (a button, the API, a
    command): waits a while for a run already under way. None: it was still running."""
    return integration_run(
        integration_id=integration_id,
        trigger=trigger,
        direction=direction,
        formation_uids=formation_uids,
        wait=settings.CALENDAR_EXPORT_LOCK_WAIT,
        on_pending=lambda: _send_again(integration_id, trigger),
    )


def dispatch_in_background(integration_id: int, trigger: str) -> bool:
    """A sync asked for by someone who does not wait for it (the calendar page's button): a
    task for the workers, or, without a broker, a thread of this process, so that the request
    answers at once. False when one is already asked for or running: nothing more is sent."""
    if SyncRun.objects.filter(integration_id=integration_id, finished_at__isnull=True).exists():
        return False
    if not integration_sync_request(integration_id=integration_id):
        return False
    if settings.CELERY_TASK_ALWAYS_EAGER:
        thread = threading.Thread(
            target=_sync_in_thread, args=(integration_id, trigger), name="calendar-sync"
        )
        with _threads_lock:
            _threads[:] = [t for t in _threads if t.is_alive()] + [thread]
        transaction.on_commit(thread.start)
    else:
        transaction.on_commit(
            lambda: sync_integration.apply_async((integration_id, trigger), {"requested": True})
        )
    return True


_threads: list[threading.Thread] = []  # the background syncs of this process
_threads_lock = threading.Lock()


def _sync_in_thread(integration_id: int, trigger: str) -> None:
    try:
        sync_integration(integration_id, trigger, requested=True)
    except Exception:
        logger.exception("Background sync of integration %s failed", integration_id)
    finally:
        connection.close()  # the thread's own database session


def wait_for_background_syncs(timeout: float = 60.0) -> None:
    """Waits for the background syncs of this process to end (tests, commands)."""
    with _threads_lock:
        threads = list(_threads)
    for thread in threads:
        if thread.ident is not None:
            thread.join(timeout)


def _send_again(integration_id: int, trigger: str) -> None:
    """A sync asked for while a run ended: one more task does it."""
    sync_integration.apply_async(
        (integration_id, trigger), {"requested": True}, countdown=settings.CALENDAR_PUSH_DEBOUNCE
    )


@shared_task(ignore_result=True)
def sync_integration(
    integration_id: int,
    trigger: str,
    formation_uids: list[str] | None = None,
    requested: bool = False,
) -> None:
    """One integration both ways (its push channels brought up to date after), or the export
    of some formations. Covered, or coalesced into the run under way, when there is one."""
    integration_run(
        integration_id=integration_id,
        trigger=trigger,
        direction=SyncRun.Direction.EXPORT if formation_uids else SyncRun.Direction.BOTH,
        formation_uids=set(formation_uids) if formation_uids else None,
        requested=requested,
        wait=settings.CALENDAR_EXPORT_LOCK_WAIT if formation_uids else 0.0,
        on_pending=lambda: _send_again(integration_id, trigger),
    )


@shared_task(ignore_result=True)
def propagate_formation(
    formation_uid: str, learner_id: int | None = None, learner_ids: list[int] | None = None
) -> None:
    """A formation changed (or some learners' enrollment in it; `learner_id`: one, as tasks
    already queued by an earlier version send it): one export task per calendar account
    concerned, spread over the workers."""
    if learner_id is not None:
        learner_ids = [*(learner_ids or []), learner_id]
    for integration_id in formation_integrations(
        formation_uid=formation_uid, learner_ids=learner_ids
    ):
        sync_integration.delay(
            integration_id, SyncRun.Trigger.FORMATION, formation_uids=[formation_uid]
        )


@shared_task(ignore_result=True)
def sync_due() -> int:
    """Beat, every minute: every integration whose periodic sync or retry is due. Each is
    claimed (its next date moved on by one interval) before it is sent, so a slow queue is
    not filled twice; the run sets the real next date."""
    now = timezone.now()
    due = (
        CalendarIntegration.objects.filter(sync_enabled=True)
        .exclude(status=CalendarIntegration.Status.NEEDS_RECONNECT)
        .filter(Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now))
        .order_by("next_sync_at")
        .values_list("pk", "sync_failures")[:DUE_BATCH]
    )
    due = list(due)
    if not due:
        return 0
    claimed_until = now + timedelta(seconds=settings.CALENDAR_SYNC_INTERVAL)
    CalendarIntegration.objects.filter(pk__in=[pk for pk, _ in due]).update(
        next_sync_at=claimed_until
    )
    spread = min(DUE_SPREAD, settings.CALENDAR_SYNC_INTERVAL / 2)
    # Those with a sync already on its way are left out.
    marked = set(integrations_sync_request(integration_ids=[pk for pk, _ in due]))
    for pk, failures in due:
        if pk not in marked:
            continue
        trigger = SyncRun.Trigger.RETRY if failures else SyncRun.Trigger.PERIODIC
        sync_integration.apply_async(
            (pk, trigger),
            {"requested": True},
            countdown=random.uniform(0, spread),  # noqa: S311 (spreading load, not a secret)
        )
    return len(due)


@shared_task(ignore_result=True)
def renew_channels() -> int:
    """Beat, every hour: channels about to expire are renewed (or replaced)."""
    integration_ids = channels_due_for_renewal()
    for integration_id in integration_ids:
        watch_integration.delay(integration_id)
    return len(integration_ids)


@shared_task(ignore_result=True)
def watch_integration(integration_id: int) -> None:
    integration_channels_refresh(integration_id=integration_id)


@shared_task(ignore_result=True)
def prune_history() -> int:
    """Beat, daily: runs older than CALENDAR_SYNC_HISTORY_DAYS are forgotten."""
    cutoff = timezone.now() - timedelta(days=settings.CALENDAR_SYNC_HISTORY_DAYS)
    return SyncRun.objects.filter(started_at__lt=cutoff).delete()[0]
