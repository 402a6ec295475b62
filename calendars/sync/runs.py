"""Runs: one sync (import then export, or one direction) of one integration, recorded as a
SyncRun; what tasks, commands and buttons ask for.

One runs at a time per integration (the integration lock), and requests made while one runs
coalesce into it:
- asking for a full sync marks the integration (`sync_requested_at`, kept from the first
  request); a full round clears the mark when it starts; a run that finds the mark set when
  it ends goes round again (MAX_ROUNDS at most, then `on_pending` sends another task);
- a task whose mark was cleared before it started has been covered by a round that started
  after it was asked for: it does nothing, unless that round was cut off (a run left open,
  its lock free: the worker was killed and the task is delivered again);
- the export of some formations (a formation changed) waits for the lock a while; if a
  run keeps it, it marks the integration instead, and the run's next round covers it.
Marks are set before trying the lock, and the holder looks at the mark after releasing
it, so no request is lost between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from calendars.errors import (
    AppCredentialsRejected,
    LockTimeout,
    ProviderError,
    ReconnectRequired,
    ScopeMissing,
)
from calendars.failures import UNKNOWN, failure_of, refused
from calendars.locking import Held, integration_lock, integration_lock_free, lock_rows
from calendars.models import MISSING_SCOPE, CalendarIntegration, FormationExport, SyncRun
from calendars.push import integration_channels_reconcile
from calendars.selectors import forget_has_exports, integration_for_sync, integration_has_exports
from calendars.services.credentials import integration_mark_needs_reconnect
from calendars.services.faults import provider_sync_held
from calendars.sync.exporting import (
    integration_export,
    integration_export_under_lock,
    new_export,
    retarget,
)
from calendars.sync.importing import integration_import
from calendars.sync.results import ExportResult, ImportResult
from calendars.sync.retry import retry_delay
from formations.models import Formation

MAX_ROUNDS = 3
# A mark this old is taken for a lost task: asking again sends a new one.
REQUEST_STALE_AFTER = timedelta(minutes=5)
# Seconds a task finding an open run waits for the integration's lock before taking the run
# for one under way rather than cut off.
CUT_OFF_LOCK_WAIT = 2.0


def integration_sync_request(*, integration_id: int) -> bool:
    """Asks for a full sync of the integration (the next round to start does it). True when
    none was already waiting: the caller then sends a task; otherwise one is on its way."""
    now = timezone.now()
    return bool(
        CalendarIntegration.objects.filter(_nothing_waiting(now), pk=integration_id).update(
            sync_requested_at=now
        )
    )


def integrations_sync_request(*, integration_ids: list[int]) -> list[int]:
    """`integration_sync_request` for many integrations in two statements; returns the ids
    it marked (those with none already waiting)."""
    now = timezone.now()
    with transaction.atomic():
        marked = list(
            lock_rows(CalendarIntegration.objects)
            .filter(_nothing_waiting(now), pk__in=integration_ids)
            .values_list("pk", flat=True)
        )
        CalendarIntegration.objects.filter(pk__in=marked).update(sync_requested_at=now)
    return marked


def _nothing_waiting(now: datetime) -> Q:
    """No sync asked for, or one asked for so long ago that its task was lost."""
    return Q(sync_requested_at__isnull=True) | Q(sync_requested_at__lt=now - REQUEST_STALE_AFTER)


def integration_run(
    *,
    integration_id: int,
    trigger: str,
    direction: str = SyncRun.Direction.BOTH,
    formation_uids: set[str] | None = None,
    requested: bool = False,
    wait: float = 0.0,
    on_pending: Callable[[], None] | None = None,
) -> SyncRun | None:
    """Runs the sync of one integration and records it; returns the last SyncRun, or None
    when nothing was run here: a round started after the request covered it (`requested`:
    the caller marked the integration when it asked), or another run holds the integration
    and will cover it.

    Provider failures are recorded on the run, and schedule the next attempt after a
    growing delay; they are not raised. `formation_uids` limits the export to those."""
    full = direction == SyncRun.Direction.BOTH and formation_uids is None
    # The usual case, a task asked for by a mark that finds the lock free: whether a round
    # covered it is read with the integration, under the lock.
    held = _lock_now(integration_id) if full and requested else None
    covered_unless_marked = held is not None
    if held is None:
        if full:
            if requested and not _requested(integration_id) and not _cut_off(integration_id):
                return None  # covered
            integration_sync_request(integration_id=integration_id)
        try:
            held = integration_lock(integration_id, wait=wait)
        except LockTimeout:
            if full:
                return None
            integration_sync_request(integration_id=integration_id)
            # Taken again: the holder may have released it before the mark was set.
            held = _lock_now(integration_id)
            if held is None:
                return None
            with held:
                return _rounds(integration_id, trigger, direction, formation_uids)
    with held:
        integration = integration_for_sync(integration_id)
        if integration is None:
            return None
        if (
            covered_unless_marked
            and integration.sync_requested_at is None
            and not integration.open_run
        ):
            return None  # covered by a round that started after the request
        run = _rounds(integration_id, trigger, direction, formation_uids, integration)
    if on_pending is not None and _requested(integration_id):
        on_pending()
    return run


def _lock_now(integration_id: int) -> Held | None:
    """The integration's lock if it is free, else None."""
    try:
        return integration_lock(integration_id, wait=0.0)
    except LockTimeout:
        return None


def _rounds(
    integration_id: int,
    trigger: str,
    direction: str,
    formation_uids: set[str] | None,
    integration: CalendarIntegration | None = None,
) -> SyncRun | None:
    """Runs rounds while syncs are asked for meanwhile. `integration`: as the caller just
    read it under the lock (`integration_for_sync`)."""
    run = None
    full = direction == SyncRun.Direction.BOTH and formation_uids is None
    for _round in range(MAX_ROUNDS):
        if integration is None:
            integration = integration_for_sync(integration_id)
        if integration is None:
            return run
        if integration.needs_reconnect or (
            integration.provider_fault and provider_sync_held(integration.provider)
        ):
            if full:
                _clear_requested(integration_id)
            return run
        # A full round covers any request made before it: the mark is cleared once its run
        # is recorded, so that someone asking meanwhile always sees one or the other.
        run = _run_once(integration, trigger, direction, formation_uids, clear_request=full)
        if not run.asked_meanwhile:
            break
        # Asked for meanwhile: a full round covers whatever it was.
        full, direction, formation_uids = True, SyncRun.Direction.BOTH, None
        integration = None
    return run


def _cut_off(integration_id: int) -> bool:
    """Whether a run of the integration is open with nothing running it: its worker was
    killed. The task it ran, delivered again, finds its request cleared by that very round,
    which covered nothing. The lock is waited for a moment: a killed process's database
    session, and its lock, take an instant to go."""
    if not SyncRun.objects.filter(integration_id=integration_id, finished_at__isnull=True).exists():
        return False
    return integration_lock_free(integration_id, wait=CUT_OFF_LOCK_WAIT)


def _clear_requested(integration_id: int) -> None:
    CalendarIntegration.objects.filter(pk=integration_id).exclude(
        sync_requested_at__isnull=True
    ).update(sync_requested_at=None)


def _requested(integration_id: int) -> bool:
    return CalendarIntegration.objects.filter(
        pk=integration_id, sync_requested_at__isnull=False
    ).exists()


def _run_once(
    integration: CalendarIntegration,
    trigger: str,
    direction: str,
    formation_uids: set[str] | None,
    *,
    clear_request: bool = False,
) -> SyncRun:
    if integration.open_run:
        # Whatever run of this integration is still open was cut off (the lock is ours).
        SyncRun.objects.filter(integration=integration, finished_at__isnull=True).update(
            finished_at=timezone.now(),
            error_code="interrupted",
            error=gettext("Interrompue avant la fin."),
        )
    run = SyncRun.objects.create(integration=integration, trigger=trigger, direction=direction)
    if clear_request and integration.sync_requested_at is not None:
        _clear_requested(integration.pk)
    imported, exported = ImportResult(), ExportResult()
    failure: ProviderError | None = None
    try:
        imported, exported = integration_sync(
            integration=integration, direction=direction, formation_uids=formation_uids
        )
        if exported.failed:
            # Said to the learner by the first write's failure: a calendar turned read-only
            # or gone is theirs to fix; anything else is tried again.
            first = exported.first_error
            failure = ProviderError(
                f"{exported.failed} formation(s) could not be written; they are tried again "
                f"at the next sync. First failure: {first.message if first else 'unknown'}",
                code=failure_of(first, exporting=True).code if first else "export_failed",
            )
    except ScopeMissing as error:
        # A permission withdrawn (a 403 on a call, not on the token): the learner is asked
        # for it again, as when it was never granted.
        failure = error
        integration_mark_needs_reconnect(
            integration=integration, reason=error.message, code=MISSING_SCOPE
        )
    except ProviderError as error:
        failure = error
    except Exception:
        _finish(
            run, imported, exported,
            error="Unexpected error (see the server's log).", code=UNKNOWN.code,
        )  # fmt: skip
        raise
    if failure is None:
        _finish(run, imported, exported, error="")
    else:
        _finish(run, imported, exported, error=failure.message, code=failure_of(failure).code)
    run.failure = failure  # for a caller that reports it (not saved)
    run.asked_meanwhile = _schedule_next(integration, run, failure)
    if failure is None and direction == SyncRun.Direction.BOTH:
        integration_channels_reconcile(integration=integration)
    return run


def integration_channels_refresh(*, integration_id: int) -> None:
    """Renews, opens or closes the integration's push channels, under its lock (its requests
    count towards the mailbox's concurrent ones)."""
    try:
        held = integration_lock(integration_id)
    except LockTimeout:
        return
    with held:
        integration = CalendarIntegration.objects.filter(pk=integration_id).first()
        if integration is not None:
            integration_channels_reconcile(integration=integration)


def _finish(
    run: SyncRun, imported: ImportResult, exported: ExportResult, *, error: str, code: str = ""
) -> None:
    """Records how the run ended: `error` for staff, `code` (calendars.failures) for the
    learner."""
    run.created = imported.created + exported.created
    run.updated = imported.updated + exported.updated
    run.deleted = imported.deleted + exported.deleted
    run.formations_created = exported.created
    run.formations_updated = exported.updated
    run.formations_deleted = exported.deleted
    run.skipped = imported.skipped
    run.requests = imported.requests + exported.requests
    run.error_code = code
    run.error = error
    run.warning = "\n".join(imported.warnings)
    run.finished_at = timezone.now()
    run.save()


def _schedule_next(
    integration: CalendarIntegration, run: SyncRun, failure: ProviderError | None
) -> bool:
    """After a success, the next periodic sync; after a failure, a retry after a growing
    delay with jitter, never sooner than the provider's Retry-After. A lost grant waits for
    the learner instead, and credentials the provider refuses for the operator.

    Returns whether a sync was asked for during the run (the integration is marked): the
    write after a success says it, being made only when none was."""
    now = timezone.now()
    integration_rows = CalendarIntegration.objects.filter(pk=integration.pk)
    fields: dict[str, Any] = {}
    if failure is None:
        if run.direction == SyncRun.Direction.BOTH:
            fields = {
                "sync_failures": 0,
                "next_sync_at": now + timedelta(seconds=settings.CALENDAR_SYNC_INTERVAL),
                "last_synced_at": now,
            }
        else:
            if integration.sync_failures:
                fields["sync_failures"] = 0
            if run.created or run.updated or run.deleted:
                fields["last_synced_at"] = now
    elif isinstance(failure, AppCredentialsRejected):  # not counted: the fault is the app's
        fields = {"next_sync_at": now + timedelta(seconds=settings.CALENDAR_SYNC_INTERVAL)}
    elif not isinstance(failure, ReconnectRequired):
        if run.direction == SyncRun.Direction.BOTH:
            failures = integration.sync_failures + 1
            fields = {
                "sync_failures": min(failures, 10_000),
                "next_sync_at": now + timedelta(seconds=retry_delay(failures, failure.retry_after)),
            }
        else:
            # A partial run (one formation's export, one direction) that fails is no new
            # failure in a row, and never puts off a sync already due sooner: the retry it
            # needs is a whole run, at the first retry delay at most.
            retry_at = now + timedelta(
                seconds=retry_delay(max(integration.sync_failures, 1), failure.retry_after)
            )
            integration_rows.filter(
                Q(next_sync_at__isnull=True) | Q(next_sync_at__gt=retry_at)
            ).update(next_sync_at=retry_at)
    if fields and failure is None:
        if integration_rows.filter(sync_requested_at__isnull=True).update(**fields):
            return False
        integration_rows.update(**fields)
    elif fields:
        integration_rows.update(**fields)
    return _requested(integration.pk)


def integration_sync(
    *,
    integration: CalendarIntegration,
    direction: str = SyncRun.Direction.BOTH,
    formation_uids: set[str] | None = None,
) -> tuple[ImportResult, ExportResult]:
    """Both directions (or one): the learner's calendars in (which also shows what they did
    to the exported formations), then the formations out (all, or `formation_uids`). Under
    the integration's lock, `integration` read under it (`selectors.integration_for_sync`)."""
    imported, exported = ImportResult(), ExportResult()
    if direction != SyncRun.Direction.EXPORT and (
        integration.import_enabled or integration_has_exports(integration)
    ):
        imported = integration_import(integration=integration)
    if direction != SyncRun.Direction.IMPORT:
        exported = integration_export_under_lock(
            integration=integration, formation_uids=formation_uids
        )
        if exported.created or exported.deleted:
            forget_has_exports(integration)
    return imported, exported


def formation_export(*, integration: CalendarIntegration, formation: Formation) -> ExportResult:
    """Exports one formation now (the formation page's button, the API), whatever the
    automatic export setting. A formation the learner had removed from their calendar is
    added again, as a new event."""
    if not formation.enrollments.filter(learner_id=integration.user_id).exists():
        raise refused("not_enrolled")
    if formation.is_cancelled:
        raise refused("formation_cancelled")
    target = integration.calendars.filter(is_export_target=True).first()
    if target is None:
        raise refused("no_target_calendar")
    run = SyncRun.objects.create(
        integration=integration,
        trigger=SyncRun.Trigger.MANUAL,
        direction=SyncRun.Direction.EXPORT,
    )
    busy = "Another sync of this calendar was still running."
    try:
        held = integration_lock(integration.pk)
    except LockTimeout:
        _finish(run, ImportResult(), ExportResult(busy=True), error=busy, code="sync_in_progress")
        return ExportResult(busy=True)
    # The row is written under the export lock: an export running meanwhile plans its rows
    # and creates them under the same lock, so the two never insert the same row.
    with held:
        row = FormationExport.objects.filter(
            integration=integration, formation_uid=formation.uid
        ).first()
        if row is None:
            new_export(integration, formation, target.external_id).save()
        elif row.removed_by_learner:
            row.state = FormationExport.State.ACTIVE
            retarget(row, target.external_id)  # a new copy: a new event
            row.save()
        try:
            result = integration_export(
                integration=integration, formation_uids={str(formation.uid)}
            )
        except ProviderError as error:
            _finish(
                run, ImportResult(), ExportResult(),
                error=error.message, code=failure_of(error).code,
            )  # fmt: skip
            raise
    if result.busy:
        _finish(run, ImportResult(), result, error=busy, code="sync_in_progress")
    else:
        _finish(run, ImportResult(), result, error="")
    return result
