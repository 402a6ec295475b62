"""Importing calendars, whatever the provider: full and incremental listings applied to
CalendarEvent rows.

Idempotent at every line. Each page is applied in one transaction together with the
checkpoint that says where to resume, so a crash leaves either the page and its checkpoint or
neither. A full import marks every row it sees with a new generation; rows left with an older
one after the last page are gone at the provider and are deleted. Queries are a fixed number
per page, whatever the page's size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import learner_language
from calendars.models import (
    Calendar,
    CalendarEvent,
    CalendarIntegration,
    FormationExport,
    SyncRun,
)
from calendars.providers import get_provider
from calendars.providers.base import (
    EventPage,
    ExportedFormation,
    Outcome,
    Provider,
    ProviderError,
    ReconnectRequired,
    RemoteEvent,
    Removed,
    SyncTokenExpired,
    Unauthorized,
    Write,
    WriteKind,
    WriteOutcome,
)
from calendars.push import integration_channels_reconcile
from calendars.services import integration_call, integration_refresh_calendars
from formations.models import Formation

logger = logging.getLogger(__name__)

# Fields copied from a RemoteEvent to a CalendarEvent.
EVENT_FIELDS = [
    f.name for f in fields(RemoteEvent) if f.name not in ("external_id", "formation_marker")
]
# The first key of our PostgreSQL advisory locks (the second is the calendar's id).
LOCK_NAMESPACE = 0x43414C  # "CAL"
# The engine waits through these; tests replace it to record the waits instead.
sleep: Callable[[float], None] = time.sleep


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    requests: int = 0
    full: bool = False
    busy: int = 0  # calendars another import was already bringing up to date
    access_token: str = field(default="", repr=False)  # reused for every page of one import

    def add(self, other: ImportResult) -> None:
        for name in ("created", "updated", "deleted", "skipped", "requests", "busy"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.full = self.full or other.full
        self.access_token = other.access_token or self.access_token

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "skipped": self.skipped,
        }


def import_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or timezone.now()
    return (
        now - timedelta(days=settings.CALENDAR_IMPORT_DAYS_BACK),
        now + timedelta(days=settings.CALENDAR_IMPORT_DAYS_AHEAD),
    )


def integration_import(*, integration: CalendarIntegration) -> ImportResult:
    """Imports every calendar the learner chose, and lists the one receiving formations for
    what the learner did to them there. A lost grant stops everything (the integration is
    marked 'needs reconnect'); other failures are raised after the other calendars were
    imported."""
    total = ImportResult()
    failure: ProviderError | None = None
    if not integration.calendars.exists():  # the listing failed when connecting
        integration_refresh_calendars(integration=integration)
    listed = Q(import_enabled=True)
    if integration.exports.exists():
        listed |= Q(is_export_target=True)
    for calendar in integration.calendars.filter(listed):
        try:
            total.add(calendar_import(calendar=calendar))
        except ReconnectRequired:
            raise
        except ProviderError as error:
            logger.warning("Import of calendar %s failed: %s", calendar.pk, error.message)
            failure = failure or error
    if total.created or total.updated or total.deleted:
        CalendarIntegration.objects.filter(pk=integration.pk).update(last_synced_at=timezone.now())
    if failure is not None:
        raise failure
    return total


def calendar_import(*, calendar: Calendar) -> ImportResult:
    """Brings one calendar's events up to date: incrementally from its sync token, or by a
    full listing (resumed from its checkpoint) when it has none or the provider refuses it.

    One import at a time per calendar: a second one finds the lock taken and returns at once
    (busy=1), since the running one brings the calendar up to date anyway.
    """
    with _calendar_lock(calendar.pk) as acquired:
        if not acquired:
            return ImportResult(busy=1)
        calendar.refresh_from_db()
        return _import(calendar)


_local_locks: dict[tuple[int, int], threading.RLock] = {}
_local_locks_guard = threading.Lock()


@contextmanager
def _calendar_lock(calendar_id: int) -> Iterator[bool]:
    """One import at a time per calendar; a second one does not wait."""
    with _lock(LOCK_NAMESPACE, calendar_id, wait=0.0) as acquired:
        yield acquired


@contextmanager
def _lock(namespace: int, key: int, *, wait: float) -> Iterator[bool]:
    """A lock that writes nothing: PostgreSQL's advisory lock (shared by every process and
    machine), else, on SQLite in development, a lock of this process. Released by a crash
    too (the connection closes). Waits up to `wait` seconds for it. Both are re-entrant: the
    session or thread holding it gets it again."""
    deadline = time.monotonic() + wait
    if connection.vendor == "postgresql":
        pair = (namespace, key % 2**31)
        while True:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", pair)
                acquired = cursor.fetchone()[0]
            if acquired or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", pair)
        return
    with _local_locks_guard:
        lock = _local_locks.setdefault((namespace, key), threading.RLock())
    acquired = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def _import(calendar: Calendar) -> ImportResult:
    result = ImportResult()
    if calendar.sync_token and not calendar.resume_from:
        try:
            _incremental(calendar, result)
            return result
        except SyncTokenExpired:
            logger.info("Calendar %s: sync token refused, importing everything again", calendar.pk)
            calendar.sync_token = ""
            calendar.save(update_fields=["sync_token", "updated_at"])
    _full(calendar, result)
    return result


def _incremental(calendar: Calendar, result: ImportResult) -> None:
    page_token = ""
    while True:
        page = _fetch(calendar, result, sync_token=calendar.sync_token, page=page_token)
        with transaction.atomic():
            result.add(_apply(calendar, page, generation=None))
            if page.next_page:
                page_token = page.next_page
                continue
            if page.sync_token and page.sync_token != calendar.sync_token:
                calendar.sync_token = page.sync_token
                calendar.last_imported_at = timezone.now()
                calendar.save(update_fields=["sync_token", "last_imported_at", "updated_at"])
            return


def _full(calendar: Calendar, result: ImportResult) -> None:
    """The checkpoint keeps the listing's window with its next page: providers bind a page to
    the exact query that started the listing."""
    result.full = True
    if calendar.resume_from:  # resume the interrupted listing
        checkpoint = json.loads(calendar.resume_from)
        window = (
            datetime.fromisoformat(checkpoint["from"]),
            datetime.fromisoformat(checkpoint["to"]),
        )
        next_page = checkpoint["page"]
    else:  # a new full import
        calendar.generation += 1
        calendar.save(update_fields=["generation", "updated_at"])
        window, next_page = import_window(), ""
    while True:
        page = _fetch(calendar, result, window=window, page=next_page)
        with transaction.atomic():
            result.add(_apply(calendar, page, generation=calendar.generation))
            if page.next_page:
                next_page = page.next_page
                calendar.resume_from = json.dumps(
                    {"page": next_page, "from": window[0].isoformat(), "to": window[1].isoformat()}
                )
                calendar.save(update_fields=["resume_from", "updated_at"])
                continue
            stale = calendar.events.filter(generation__lt=calendar.generation)
            result.deleted += stale.delete()[0]
            calendar.resume_from = ""
            calendar.sync_token = page.sync_token
            calendar.last_imported_at = timezone.now()
            calendar.save(
                update_fields=["resume_from", "sync_token", "last_imported_at", "updated_at"]
            )
            return


def _fetch(calendar: Calendar, result: ImportResult, **listing: Any) -> EventPage:
    """One page, retried through rate limits, 5xx and timeouts (bounded), with a token
    refresh on a 401. The access token is asked for once per import, not once per page."""
    integration = calendar.integration
    provider = get_provider(integration.provider)

    def call(token: str) -> EventPage:
        result.requests += 1
        return provider.list_events(
            token, calendar.external_id, window=listing.get("window") or import_window(),
            sync_token=listing.get("sync_token", ""), page=listing.get("page", ""),
        )  # fmt: skip

    for attempt in range(settings.CALENDAR_RETRY_ATTEMPTS):
        try:
            if result.access_token:
                try:
                    return call(result.access_token)
                except Unauthorized:
                    result.access_token = ""
            page, result.access_token = integration_call(
                integration=integration, call=lambda token: (call(token), token)
            )
            return page
        except SyncTokenExpired:
            raise
        except ProviderError as error:
            if error.permanent or attempt + 1 == settings.CALENDAR_RETRY_ATTEMPTS:
                raise
            sleep(_delay(error, attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _delay(error: ProviderError, attempt: int) -> float:
    """The provider's Retry-After when it gives one, else exponential backoff with full
    jitter (https://developers.google.com/calendar/api/guides/errors)."""
    if error.retry_after is not None:
        return min(error.retry_after, settings.CALENDAR_RETRY_MAX_WAIT)
    ceiling = min(settings.CALENDAR_RETRY_MAX_WAIT, settings.CALENDAR_RETRY_BASE * 2**attempt)
    return random.uniform(0, ceiling)  # noqa: S311 (jitter, not a secret)


def _apply(calendar: Calendar, page: EventPage, *, generation: int | None) -> ImportResult:
    """Applies one page: a fixed number of queries whatever its size."""
    counts = ImportResult(skipped=page.skipped)
    ours = _reconcile_exports(calendar, page)
    # An event of ours (an exported formation) is not imported back as a duplicate.
    listed = {item.external_id: item for item in page.items
              if isinstance(item, RemoteEvent) and not item.formation_marker
              and item.external_id not in ours and calendar.import_enabled}  # fmt: skip
    removed = [item.external_id for item in page.items if isinstance(item, Removed)]
    existing = {
        event.external_id: event
        for event in CalendarEvent.objects.filter(calendar=calendar, external_id__in=listed)
    }
    to_create, to_update = [], []
    for external_id, remote in listed.items():
        event = existing.get(external_id)
        if event is None:
            event = CalendarEvent(calendar=calendar, external_id=external_id)
            _copy(remote, event)
            event.generation = generation or calendar.generation
            to_create.append(event)
        elif _differs(remote, event):
            _copy(remote, event)
            to_update.append(event)
    if to_create:
        # Another import of the same calendar may have inserted some meanwhile: fine.
        CalendarEvent.objects.bulk_create(to_create, batch_size=1000, ignore_conflicts=True)
    if to_update:
        now = timezone.now()
        for event in to_update:
            event.updated_at = now
        CalendarEvent.objects.bulk_update(to_update, [*EVENT_FIELDS, "updated_at"], batch_size=500)
    if generation is not None and existing:
        # Only the bookkeeping column of rows seen unchanged: their content stays untouched.
        CalendarEvent.objects.filter(pk__in=[e.pk for e in existing.values()]).exclude(
            generation=generation
        ).update(generation=generation)
    if removed:
        counts.deleted = CalendarEvent.objects.filter(
            calendar=calendar, external_id__in=removed
        ).delete()[0]
    counts.created, counts.updated = len(to_create), len(to_update)
    return counts


def _reconcile_exports(calendar: Calendar, page: EventPage) -> set[str]:
    """What the learner did to exported formations, as a listing shows it: an edited event
    is written again by the next export, a deleted one is left deleted. An event carrying
    our marker that no row knows (an answer lost to a crash, a reconnected account) is
    adopted rather than created again. Returns the ids of our events on the page."""
    ids = [item.external_id for item in page.items]
    rows = {
        row.external_id: row
        for row in FormationExport.objects.filter(
            integration_id=calendar.integration_id,
            calendar_external_id=calendar.external_id,
            external_id__in=ids,
        )
    }
    changed = []
    for item in page.items:
        row = rows.get(item.external_id)
        if row is None or row.removed_by_learner:
            continue
        if isinstance(item, Removed):
            row.state, row.fingerprint = FormationExport.State.REMOVED, ""
            changed.append(row)
        elif row.remote_version and item.change_marker != row.remote_version:
            row.fingerprint, row.remote_version = "", item.change_marker
            changed.append(row)
    if changed:
        FormationExport.objects.bulk_update(changed, ["state", "fingerprint", "remote_version"])
    unknown = {
        _uuid(item.formation_marker): item
        for item in page.items
        if isinstance(item, RemoteEvent)
        and item.formation_marker
        and item.external_id not in rows
        and _uuid(item.formation_marker)
    }
    if unknown and calendar.is_export_target:
        _adopt(calendar, unknown)
    return set(rows) | {item.external_id for item in unknown.values()}


def _adopt(calendar: Calendar, found: dict[str, RemoteEvent]) -> None:
    known = {
        str(row.formation_uid): row
        for row in FormationExport.objects.filter(
            integration_id=calendar.integration_id, formation_uid__in=found
        )
    }
    enrolled = {
        str(f.uid): f
        for f in Formation.objects.filter(
            uid__in=[uid for uid in found if uid not in known],
            enrollments__learner_id=calendar.integration.user_id,
            status=Formation.Status.SCHEDULED,
        )
    }
    for uid, item in found.items():
        row = known.get(uid)
        if row is None and uid in enrolled:
            FormationExport.objects.get_or_create(
                integration_id=calendar.integration_id,
                formation_uid=uid,
                defaults={
                    "formation": enrolled[uid],
                    "calendar_external_id": calendar.external_id,
                    "external_id": item.external_id,
                    "create_sent": True,
                    "remote_version": item.change_marker,
                },
            )
        elif (
            row is not None
            and row.calendar_external_id == calendar.external_id
            and row.create_sent
            and not row.remote_version
            and row.external_id in ("", item.external_id)
        ):
            row.external_id, row.remote_version, row.fingerprint = (
                item.external_id,
                item.change_marker,
                "",
            )
            row.save(update_fields=["external_id", "remote_version", "fingerprint", "updated_at"])


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return ""


def _copy(remote: RemoteEvent, event: CalendarEvent) -> None:
    for name in EVENT_FIELDS:
        setattr(event, name, _column(name, getattr(remote, name)))


def _differs(remote: RemoteEvent, event: CalendarEvent) -> bool:
    return any(
        getattr(event, name) != _column(name, getattr(remote, name)) for name in EVENT_FIELDS
    )


def _column(name: str, value: Any) -> Any:
    """The value as the column keeps it (URL columns have a length limit)."""
    if name in ("online_url", "html_link") and value and len(value) > 2000:
        return ""
    return value


# --- export -----------------------------------------------------------------------------
#
# The learner's formations are written to the calendar chosen to receive them. An export
# compares what should be there (the formations the learner is enrolled in, still scheduled)
# with FormationExport rows, and sends only the differences, in the provider's batches:
# creates, updates (the body's fingerprint changed, or the learner edited the event), and
# deletes (cancelled, unenrolled, deleted formations). Idempotent at every line:
# - a row exists, marked `create_sent`, before its create is sent: after a crash, Google's
#   create is sent again with the same event id (409 means it is there), Outlook's event is
#   looked up by its extended property first;
# - the rows of one learner's calendar are written by one export at a time (a lock).

EXPORT_LOCK_NAMESPACE = 0x455850  # "EXP"


@dataclass
class ExportResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    removed: int = 0  # events the learner deleted from their calendar: left alone
    failed: int = 0
    requests: int = 0
    busy: bool = False
    event_ids: dict[str, str] = field(default_factory=dict, repr=False)  # formation uid → id

    def add(self, other: ExportResult) -> None:
        for name in ("created", "updated", "deleted", "unchanged", "removed", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.requests += other.requests
        self.event_ids.update(other.event_ids)

    def as_dict(self) -> dict[str, int]:
        names = ("created", "updated", "deleted", "unchanged", "removed", "failed")
        return {name: getattr(self, name) for name in names}


@dataclass
class _Step:
    """One write of an export and what its outcome means."""

    row: FormationExport
    write: Write
    fingerprint: str = ""
    # "write": the formation into its calendar; "remove": out of the calendar; "move": out of
    # the calendar that no longer receives formations, then into `target`; "duplicate": an
    # extra event found with the formation's marker.
    purpose: str = "write"
    target: str = ""


def integration_export(
    *, integration: CalendarIntegration, formation_uids: set[str] | None = None
) -> ExportResult:
    """Brings the learner's exported formations (all, or those of `formation_uids`) in line.

    Raises ReconnectRequired when the grant is gone. Other provider failures of single events
    are retried (bounded) and then counted in `failed`, the rows left for the next export.
    """
    uids = {str(uid) for uid in formation_uids} if formation_uids is not None else None
    with _integration_lock(integration.pk) as acquired:
        if not acquired:
            return ExportResult(busy=True)
        integration.refresh_from_db()
        if integration.needs_reconnect:
            raise ReconnectRequired(integration.last_error or "The integration needs reconnecting.")
        result = ExportResult()
        steps = _export_plan(integration, uids, result)
        _export_run(integration, steps, result)
        return result


def export_body(formation: Formation, *, provider: Provider, language: str) -> dict[str, Any]:
    """The provider's body for `formation`, in the learner's language."""
    url = f"{settings.SITE_URL}{formation.get_absolute_url()}"
    with translation.override(language):
        link = gettext("Page de la formation : %(url)s") % {"url": url}
        if formation.online_url:
            link = (
                gettext("Réunion en ligne : %(url)s") % {"url": formation.online_url} + "\n" + link
            )
    description = "\n\n".join(part for part in (formation.description.strip(), link) if part)
    return provider.event_body(
        ExportedFormation(
            uid=str(formation.uid),
            title=formation.title,
            description=description,
            location=formation.location or formation.online_url,
            url=url,
            start=formation.start,
            end=formation.end,
            time_zone=formation.time_zone,
        )
    )


def _fingerprint(body: dict[str, Any], calendar_id: str) -> str:
    text = json.dumps([calendar_id, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _export_plan(
    integration: CalendarIntegration, uids: set[str] | None, result: ExportResult
) -> list[_Step]:
    provider = get_provider(integration.provider)
    target = integration.calendars.filter(is_export_target=True).first()
    language = learner_language(integration.user_id)
    rows = integration.exports.all()
    formations = Formation.objects.filter(
        enrollments__learner_id=integration.user_id, status=Formation.Status.SCHEDULED
    )
    if uids is not None:
        rows = rows.filter(formation_uid__in=uids)
        formations = formations.filter(uid__in=uids)
    by_uid = {str(row.formation_uid): row for row in rows}
    wanted = (
        {str(f.uid): f for f in formations if integration.export_enabled or str(f.uid) in by_uid}
        if target is not None
        else {}  # no calendar receives formations any more: those written are taken back
    )
    steps: list[_Step] = []
    new_rows = []
    for uid, formation in wanted.items():
        row = by_uid.get(uid)
        if row is not None and row.removed_by_learner:
            result.removed += 1
            continue
        body = export_body(formation, provider=provider, language=language)
        fingerprint = _fingerprint(body, target.external_id)
        if row is None:
            row = _new_export(integration, formation, target.external_id)
            new_rows.append(row)
        if row.calendar_external_id != target.external_id:
            # The learner chose another calendar: out of the old one first, then into the new.
            if row.create_sent:
                move = _removal(row, purpose="move")
                move.write.body, move.fingerprint, move.target = (
                    body,
                    fingerprint,
                    target.external_id,
                )
                steps.append(move)
                continue
            _retarget(row, target.external_id)
            row.save()
        step = _writing_step(row, body, fingerprint)
        if step is None:
            result.unchanged += 1
            result.event_ids[uid] = row.external_id
        else:
            steps.append(step)
    FormationExport.objects.bulk_create(new_rows)
    for uid, row in by_uid.items():
        if uid not in wanted:
            if row.create_sent and not row.removed_by_learner:
                steps.append(_removal(row))
            else:
                row.delete()  # never written, or already gone from the calendar
    return steps


def _new_export(
    integration: CalendarIntegration, formation: Formation, calendar_id: str
) -> FormationExport:
    """A row for a formation about to be written to `calendar_id` (not saved)."""
    row = FormationExport(integration=integration, formation=formation,
                          formation_uid=formation.uid)  # fmt: skip
    _retarget(row, calendar_id)
    return row


def _retarget(row: FormationExport, calendar_id: str) -> None:
    """Points the row at `calendar_id`, as never written there."""
    integration = row.integration
    row.calendar_external_id = calendar_id
    row.external_id = get_provider(integration.provider).export_event_id(
        owner=f"{integration.user_id}:{integration.provider}",
        calendar_id=calendar_id,
        uid=str(row.formation_uid),
        copy=row.copy,
    )
    row.create_sent = False
    row.fingerprint = row.remote_version = ""


def _writing_step(row: FormationExport, body: dict[str, Any], fingerprint: str) -> _Step | None:
    uid = str(row.formation_uid)
    base = {"calendar_id": row.calendar_external_id, "uid": uid, "copy": row.copy}
    if not row.create_sent:
        write = Write(key=0, kind=WriteKind.CREATE, event_id=row.external_id, body=body, **base)
    elif not row.remote_version:  # sent, answer unknown
        if row.external_id:  # an id of our choosing: sending again is safe
            write = Write(key=0, kind=WriteKind.CREATE, event_id=row.external_id, body=body, **base)
        else:
            write = Write(key=0, kind=WriteKind.FIND, body=body, **base)
    elif row.fingerprint != fingerprint:
        write = Write(key=0, kind=WriteKind.UPDATE, event_id=row.external_id, body=body, **base)
    else:
        return None
    return _Step(row=row, write=write, fingerprint=fingerprint)


def _removal(row: FormationExport, *, purpose: str = "remove") -> _Step:
    """Deletes the row's event; looks it up first when its id is unknown (Outlook)."""
    kind = WriteKind.DELETE if row.external_id else WriteKind.FIND
    write = Write(
        key=0,
        kind=kind,
        calendar_id=row.calendar_external_id,
        event_id=row.external_id,
        uid=str(row.formation_uid),
        copy=row.copy,
    )
    return _Step(row=row, write=write, purpose=purpose)


def _export_run(integration: CalendarIntegration, steps: list[_Step], result: ExportResult) -> None:
    provider = get_provider(integration.provider)
    attempt = rounds = 0
    while steps:
        rounds += 1
        if rounds > settings.CALENDAR_RETRY_ATTEMPTS + 4:  # follow-ups never loop for ever
            result.failed += len(steps)
            return
        for key, step in enumerate(steps):
            step.write.key = key
        _mark_create_sent([s.row for s in steps if s.write.kind == WriteKind.CREATE])
        writes = [s.write for s in steps]
        outcomes, sent = integration_call(
            integration=integration,
            call=lambda token, writes=writes: provider.write_events(token, writes),  # type: ignore[misc]
        )
        result.requests += sent
        follow_ups: list[_Step] = []
        retries: list[tuple[_Step, ProviderError]] = []
        written: list[FormationExport] = []  # saved together: queries per batch, not per event
        gone: list[int] = []
        with transaction.atomic():
            for step, outcome in zip(steps, outcomes, strict=True):
                if outcome.status == Outcome.FAILED and outcome.error is not None:
                    if outcome.error.permanent:
                        _record_export_error(step.row, outcome.error, result)
                    else:
                        retries.append((step, outcome.error))
                    continue
                follow_ups += _apply_outcome(step, outcome, result, written=written, gone=gone)
            FormationExport.objects.bulk_update(
                written, [*WRITTEN_FIELDS, "updated_at"], batch_size=500
            )
            FormationExport.objects.filter(pk__in=gone).delete()
        if retries:
            attempt += 1
            if attempt >= settings.CALENDAR_RETRY_ATTEMPTS:
                for step, error in retries:
                    _record_export_error(step.row, error, result)
                retries = []
            else:
                sleep(max(_delay(error, attempt - 1) for _step, error in retries))
        steps = follow_ups + [step for step, _error in retries]


def _mark_create_sent(rows: list[FormationExport]) -> None:
    """Written before the creates go out: after a crash, the row says to check first."""
    pending = [row.pk for row in rows if not row.create_sent]
    if pending:
        FormationExport.objects.filter(pk__in=pending).update(create_sent=True)
    for row in rows:
        row.create_sent = True


WRITTEN_FIELDS = ["external_id", "remote_version", "fingerprint", "last_error"]


def _apply_outcome(
    step: _Step,
    outcome: WriteOutcome,
    result: ExportResult,
    *,
    written: list[FormationExport],
    gone: list[int],
) -> list[_Step]:
    """Records one write's outcome; returns the writes it calls for."""
    row, write = step.row, step.write
    found = write.kind == WriteKind.FIND and outcome.status == Outcome.OK
    duplicates = [
        _Step(row=row, purpose="duplicate", write=Write(
            key=0, kind=WriteKind.DELETE, calendar_id=write.calendar_id, event_id=extra))
        for extra in (outcome.duplicates if found else [])
    ]  # fmt: skip
    if step.purpose == "duplicate":
        result.deleted += outcome.status == Outcome.OK
        return []
    if step.purpose in ("remove", "move"):
        if found:  # its id is known now: delete it
            row.external_id = outcome.event_id
            removal = _removal(row, purpose=step.purpose)
            removal.write.body, removal.fingerprint = write.body, step.fingerprint
            removal.target = step.target
            return [removal, *duplicates]
        result.deleted += write.kind == WriteKind.DELETE and outcome.status == Outcome.OK
        if step.purpose == "remove":
            gone.append(row.pk)
            return []
        _retarget(row, step.target)
        row.save()
        create = Write(
            key=0,
            kind=WriteKind.CREATE,
            calendar_id=step.target,
            event_id=row.external_id,
            body=write.body,
            uid=write.uid,
            copy=row.copy,
        )
        return [_Step(row=row, write=create, fingerprint=step.fingerprint)]  # fmt: skip
    if write.kind == WriteKind.FIND:
        if not found:  # the earlier create never landed: send it (same transactionId)
            write.kind = WriteKind.CREATE
            return [step]
        row.external_id, row.remote_version = outcome.event_id, outcome.version
        row.save(update_fields=["external_id", "remote_version", "updated_at"])
        write.kind, write.event_id = WriteKind.UPDATE, outcome.event_id  # its content is unknown
        return [step, *duplicates]
    if outcome.status == Outcome.EXISTS:  # an earlier create landed: make it right
        write.kind = WriteKind.UPDATE
        return [step]
    if outcome.status in (Outcome.GONE, Outcome.REMOVED):
        row.state = FormationExport.State.REMOVED
        row.fingerprint = ""
        row.save(update_fields=["state", "fingerprint", "updated_at"])
        result.removed += 1
        return []
    if write.kind == WriteKind.CREATE:
        result.created += 1
    else:
        result.updated += 1
    row.external_id, row.remote_version = outcome.event_id, outcome.version
    row.fingerprint = step.fingerprint
    row.last_error = ""
    row.updated_at = timezone.now()
    written.append(row)
    result.event_ids[str(row.formation_uid)] = row.external_id
    return []


def _record_export_error(row: FormationExport, error: ProviderError, result: ExportResult) -> None:
    logger.warning("Export of formation %s failed: %s", row.formation_uid, error.message)
    result.failed += 1
    if row.pk is not None:
        FormationExport.objects.filter(pk=row.pk).update(last_error=error.message)


@contextmanager
def _integration_lock(integration_id: int, *, wait: float | None = None) -> Iterator[bool]:
    """One sync or export at a time per learner's calendar account, so that Outlook never
    sees more than one batch of 4 requests from us per mailbox. Waits up to `wait` seconds
    (default CALENDAR_EXPORT_LOCK_WAIT: a double click gets its answer). Re-entrant: a sync
    holding it exports under it."""
    if wait is None:
        wait = settings.CALENDAR_EXPORT_LOCK_WAIT
    with _lock(EXPORT_LOCK_NAMESPACE, integration_id, wait=wait) as acquired:
        yield acquired


class ExportRefused(Exception):
    """A formation that cannot be exported; the message is for the learner."""

    def __init__(self, message: Any, *, code: str) -> None:
        super().__init__(str(message))
        self.message = message
        self.code = code


def formation_export(*, integration: CalendarIntegration, formation: Formation) -> ExportResult:
    """Exports one formation now (the formation page's button, the API), whatever the
    automatic export setting. A formation the learner had removed from their calendar is
    added again, as a new event."""
    if not formation.enrollments.filter(learner_id=integration.user_id).exists():
        raise ExportRefused(_("Vous n'êtes pas inscrit à cette formation."), code="not_enrolled")
    if formation.is_cancelled:
        raise ExportRefused(_("Cette formation a été annulée."), code="formation_cancelled")
    target = integration.calendars.filter(is_export_target=True).first()
    if target is None:
        raise ExportRefused(
            _("Choisissez d'abord, dans les paramètres, le calendrier qui reçoit vos formations."),
            code="no_target_calendar",
        )
    new = _new_export(integration, formation, target.external_id)
    row, _created = FormationExport.objects.get_or_create(
        integration=integration,
        formation_uid=formation.uid,
        defaults={f: getattr(new, f) for f in ("formation", "calendar_external_id", "external_id")},
    )
    if row.removed_by_learner:
        row.state = FormationExport.State.ACTIVE
        row.copy += 1
        _retarget(row, target.external_id)
        row.save()
    run = SyncRun.objects.create(
        integration=integration,
        trigger=SyncRun.Trigger.MANUAL,
        direction=SyncRun.Direction.EXPORT,
    )
    try:
        result = integration_export(integration=integration, formation_uids={str(formation.uid)})
    except ProviderError as error:
        _finish(run, ImportResult(), ExportResult(), error=error.message)
        raise
    busy = "Another sync of this calendar was still running." if result.busy else ""
    _finish(run, ImportResult(), result, error=busy)
    return result


def integration_export_remove_all(*, integration: CalendarIntegration) -> ExportResult:
    """Takes every exported formation back out of the learner's calendar (on disconnect)."""
    with _integration_lock(integration.pk) as acquired:
        result = ExportResult(busy=not acquired)
        if not acquired:
            return result
        steps = []
        for row in integration.exports.all():
            if row.create_sent and not row.removed_by_learner:
                steps.append(_removal(row))
            else:
                row.delete()
        _export_run(integration, steps, result)
        return result


def integration_sync(
    *,
    integration: CalendarIntegration,
    direction: str = SyncRun.Direction.BOTH,
    formation_uids: set[str] | None = None,
) -> tuple[ImportResult, ExportResult]:
    """Both directions (or one): the learner's calendars in (which also shows what they did
    to the exported formations), then the formations out (all, or `formation_uids`)."""
    imported, exported = ImportResult(), ExportResult()
    if direction != SyncRun.Direction.EXPORT and (
        integration.import_enabled or integration.exports.exists()
    ):
        imported = integration_import(integration=integration)
    if direction != SyncRun.Direction.IMPORT:
        exported = integration_export(integration=integration, formation_uids=formation_uids)
    return imported, exported


def formation_integrations(*, formation_uid: str, learner_id: int | None = None) -> list[int]:
    """The integrations whose calendars hold, or should hold, the formation: those it was
    exported to and those of its learners who export their formations."""
    integrations = CalendarIntegration.objects.filter(
        Q(exports__formation_uid=formation_uid)
        | Q(export_enabled=True, user__enrollments__formation__uid=formation_uid)
    ).exclude(status=CalendarIntegration.Status.NEEDS_RECONNECT)
    if learner_id is not None:
        integrations = integrations.filter(user_id=learner_id)
    return sorted(set(integrations.values_list("pk", flat=True)))


# --- runs: what tasks, commands and buttons ask for ------------------------------------------
#
# A run is one sync (import then export, or one direction) of one integration, recorded as a
# SyncRun. One runs at a time per integration (the integration lock), and requests made while
# one runs coalesce into it:
# - asking for a full sync marks the integration (`sync_requested_at`, kept from the first
#   request); a full round clears the mark when it starts; a run that finds the mark set when
#   it ends goes round again (MAX_ROUNDS at most, then `on_pending` sends another task);
# - a task whose mark was cleared before it started has been covered by a round that started
#   after it was asked for: it does nothing, unless that round was cut off (a run left open,
#   its lock free: the worker was killed and the task is delivered again);
# - the export of some formations (a formation changed) waits for the lock a while; if a
#   run keeps it, it marks the integration instead, and the run's next round covers it.
# Marks are set before trying the lock, and the holder looks at the mark after releasing
# it, so no request is lost between the two.

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
            CalendarIntegration.objects.select_for_update()
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
    if full:
        if requested and not _requested(integration_id) and not _cut_off(integration_id):
            return None  # covered
        integration_sync_request(integration_id=integration_id)
    with _integration_lock(integration_id, wait=wait) as acquired:
        if not acquired and not full:
            integration_sync_request(integration_id=integration_id)
            # Taken again: the holder may have released it before the mark was set.
            with _integration_lock(integration_id, wait=0.0) as acquired_now:
                return (
                    _rounds(integration_id, trigger, direction, formation_uids)
                    if acquired_now
                    else None
                )
        if not acquired:
            return None
        run = _rounds(integration_id, trigger, direction, formation_uids)
    if on_pending is not None and _requested(integration_id):
        on_pending()
    return run


def _rounds(
    integration_id: int, trigger: str, direction: str, formation_uids: set[str] | None
) -> SyncRun | None:
    run = None
    full = direction == SyncRun.Direction.BOTH and formation_uids is None
    for _round in range(MAX_ROUNDS):
        integration = CalendarIntegration.objects.filter(pk=integration_id).first()
        if integration is None:
            return run
        if full:
            _clear_requested(integration_id)
        if integration.needs_reconnect:
            return run
        run = _run_once(integration, trigger, direction, formation_uids)
        if not _requested(integration_id):
            break
        # Asked for meanwhile: a full round covers whatever it was.
        full, direction, formation_uids = True, SyncRun.Direction.BOTH, None
    return run


def _cut_off(integration_id: int) -> bool:
    """Whether a run of the integration is open with nothing running it: its worker was
    killed. The task it ran, delivered again, finds its request cleared by that very round,
    which covered nothing. The lock is waited for a moment: a killed process's database
    session, and its lock, take an instant to go."""
    if not SyncRun.objects.filter(integration_id=integration_id, finished_at__isnull=True).exists():
        return False
    with _integration_lock(integration_id, wait=CUT_OFF_LOCK_WAIT) as free:
        return free


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
) -> SyncRun:
    # Whatever run of this integration is still open was cut off (the lock is ours).
    SyncRun.objects.filter(integration=integration, finished_at__isnull=True).update(
        finished_at=timezone.now(), error=gettext("Interrompue avant la fin.")
    )
    run = SyncRun.objects.create(integration=integration, trigger=trigger, direction=direction)
    imported, exported = ImportResult(), ExportResult()
    failure: ProviderError | None = None
    try:
        imported, exported = integration_sync(
            integration=integration, direction=direction, formation_uids=formation_uids
        )
        if exported.failed:
            failure = ProviderError(
                f"{exported.failed} formation(s) could not be written; "
                "they are tried again at the next sync."
            )
    except ProviderError as error:
        failure = error
    except Exception:
        _finish(run, imported, exported, error="Unexpected error (see the server's log).")
        raise
    _finish(run, imported, exported, error=failure.message if failure else "")
    run.failure = failure  # for a caller that reports it (not saved)
    _schedule_next(integration, run, failure)
    if failure is None and direction == SyncRun.Direction.BOTH:
        integration_channels_reconcile(integration=integration)
    return run


def integration_channels_refresh(*, integration_id: int) -> None:
    """Renews, opens or closes the integration's push channels, under its lock (its requests
    count towards the mailbox's concurrent ones)."""
    with _integration_lock(integration_id) as acquired:
        integration = (
            CalendarIntegration.objects.filter(pk=integration_id).first() if acquired else None
        )
        if integration is not None:
            integration_channels_reconcile(integration=integration)


def _finish(run: SyncRun, imported: ImportResult, exported: ExportResult, *, error: str) -> None:
    run.created = imported.created + exported.created
    run.updated = imported.updated + exported.updated
    run.deleted = imported.deleted + exported.deleted
    run.skipped = imported.skipped
    run.requests = imported.requests + exported.requests
    run.error = error
    run.finished_at = timezone.now()
    run.save()


def _schedule_next(
    integration: CalendarIntegration, run: SyncRun, failure: ProviderError | None
) -> None:
    """After a success, the next periodic sync; after a failure, a retry after a growing
    delay with jitter, never sooner than the provider's Retry-After. A lost grant waits for
    the learner instead."""
    now = timezone.now()
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
    elif not isinstance(failure, ReconnectRequired):
        failures = integration.sync_failures + 1
        fields = {
            "sync_failures": min(failures, 10_000),
            "next_sync_at": now + timedelta(seconds=retry_delay(failures, failure.retry_after)),
        }
    if fields:
        CalendarIntegration.objects.filter(pk=integration.pk).update(**fields)


def retry_delay(failures: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after `failures` failures in a row: one minute,
    doubled each time up to CALENDAR_SYNC_RETRY_MAX, with jitter (half of it random, so
    that syncs failing together do not retry together), and at least `retry_after`."""
    ceiling = min(float(settings.CALENDAR_SYNC_RETRY_MAX), 60.0 * 2 ** min(failures - 1, 20))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not a secret)
    return max(delay, retry_after or 0.0)
