"""Exporting formations to the learner's calendar.

The learner's formations are written to the calendar chosen to receive them. An export
compares what should be there (the formations the learner is enrolled in, still scheduled)
with FormationExport rows, and sends only the differences, in the provider's batches:
creates, updates (the body's fingerprint changed, or the learner edited the event), and
deletes (cancelled, unenrolled, deleted formations). Idempotent at every line:
- a row exists, marked `create_sent`, before its create is sent: after a crash, Google's
  create is sent again with the same event id (409 means it is there), Outlook's event is
  looked up by its extended property first;
- the rows of one learner's calendar are written by one export at a time (the integration
  lock).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from accounts.models import learner_language
from calendars.errors import LockTimeout, ProviderError, ReconnectRequired
from calendars.locking import integration_lock
from calendars.models import CalendarIntegration, FormationExport
from calendars.providers import get_provider
from calendars.providers.base import Provider
from calendars.providers.types import ExportedFormation, Outcome, Write, WriteKind, WriteOutcome
from calendars.selectors import integration_calendars, integration_exports_for_sync
from calendars.services.credentials import integration_call
from calendars.sync import retry
from calendars.sync.results import ExportResult
from formations.models import Formation

logger = logging.getLogger(__name__)


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
    try:
        held = integration_lock(integration.pk)
    except LockTimeout:
        return ExportResult(busy=True)
    with held:
        integration.refresh_from_db()
        return _export(integration, uids, read_by_run=False)


def integration_export_under_lock(
    *, integration: CalendarIntegration, formation_uids: set[str] | None = None
) -> ExportResult:
    """`integration_export` for a sync run, which holds the integration's lock and read the
    integration under it (`selectors.integration_for_sync`): what that read holds (its
    calendars, the learner's language, how many formations they are enrolled in) is not asked
    again."""
    uids = {str(uid) for uid in formation_uids} if formation_uids is not None else None
    return _export(integration, uids, read_by_run=True)


def _export(
    integration: CalendarIntegration, uids: set[str] | None, *, read_by_run: bool
) -> ExportResult:
    if integration.needs_reconnect:
        raise ReconnectRequired(
            integration.last_error or "The integration needs reconnecting.",
            code=integration.last_error_code,
        )
    result = ExportResult()
    steps = _export_plan(integration, uids, result, read_by_run=read_by_run)
    _export_run(integration, steps, result)
    return result


def integration_export_remove_all(*, integration: CalendarIntegration) -> ExportResult:
    """Takes every exported formation back out of the learner's calendar (on disconnect)."""
    try:
        held = integration_lock(integration.pk)
    except LockTimeout:
        return ExportResult(busy=True)
    with held:
        result = ExportResult()
        steps = []
        for row in integration.exports.all():
            if row.create_sent and not row.removed_by_learner:
                steps.append(_removal(row))
            else:
                row.delete()
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
    return provider.calendars.event_body(
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
    integration: CalendarIntegration,
    uids: set[str] | None,
    result: ExportResult,
    *,
    read_by_run: bool = False,
) -> list[_Step]:
    provider = get_provider(integration.provider)
    target = next((c for c in integration_calendars(integration) if c.is_export_target), None)
    if read_by_run and hasattr(integration, "profile_language"):
        language = integration.profile_language or settings.LANGUAGE_CODE
    else:
        language = learner_language(integration.user_id)
    # How many formations the learner is enrolled in, as the run counted with the
    # integration: when the rows stand for as many, the formations need no query of their own.
    enrolled = (
        getattr(integration, "formations_enrolled", None) if read_by_run and uids is None else None
    )
    if uids is not None:
        rows = list(integration.exports.filter(formation_uid__in=uids))
    elif enrolled is not None:
        rows = integration_exports_for_sync(integration)
    else:
        rows = list(integration.exports.all())
    by_uid = {str(row.formation_uid): row for row in rows}
    covered = _covered(by_uid) if enrolled is not None else None
    if target is None:
        wanted = {}  # no calendar receives formations any more: those written are taken back
    elif covered is not None and (not integration.export_enabled or len(covered) == enrolled):
        wanted = covered
    else:
        formations = Formation.objects.filter(
            enrollments__learner_id=integration.user_id, status=Formation.Status.SCHEDULED
        )
        if uids is not None:
            formations = formations.filter(uid__in=uids)
        wanted = {
            str(f.uid): f for f in formations if integration.export_enabled or str(f.uid) in by_uid
        }
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
            row = new_export(integration, formation, target.external_id)
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
            retarget(row, target.external_id)
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


def _covered(by_uid: dict[str, FormationExport]) -> dict[str, Formation]:
    """The formations the rows stand for that the learner is still enrolled in and that are
    still scheduled (the rows read with their formation, annotated `enrolled`)."""
    return {
        uid: row.formation
        for uid, row in by_uid.items()
        if row.formation is not None
        and row.enrolled
        and row.formation.status == Formation.Status.SCHEDULED
    }


def new_export(
    integration: CalendarIntegration, formation: Formation, calendar_id: str
) -> FormationExport:
    """A row for a formation about to be written to `calendar_id` (not saved)."""
    row = FormationExport(integration=integration, formation=formation,
                          formation_uid=formation.uid)  # fmt: skip
    retarget(row, calendar_id)
    return row


def retarget(row: FormationExport, calendar_id: str) -> None:
    """Points the row at `calendar_id`, as never written there. A row that existed already
    becomes a new copy: the event made next is a new one, with identifiers of its own (Graph
    keeps a transactionId for the mailbox, wherever its event went, and gives back the event
    it made to a create that repeats it)."""
    integration = row.integration
    if row.pk is not None:
        row.copy += 1
    row.calendar_external_id = calendar_id
    row.external_id = get_provider(integration.provider).calendars.export_event_id(
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
        write = Write(
            key=0, kind=WriteKind.UPDATE, event_id=row.external_id, body=body,
            version=row.remote_version, **base,
        )  # fmt: skip
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
        version=row.remote_version,
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
            call=lambda token, writes=writes: provider.calendars.write_events(token, writes),  # type: ignore[misc]
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
                retry.sleep(max(retry.backoff(error, attempt - 1) for _step, error in retries))
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
        retarget(row, step.target)
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
    result.first_error = result.first_error or error
    if row.pk is not None:
        FormationExport.objects.filter(pk=row.pk).update(last_error=error.message)
