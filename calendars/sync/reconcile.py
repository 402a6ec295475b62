"""What the learner did to exported formations, as the listings of their calendars show it.

An edited event is written again by the next export; a deleted one is left deleted. An event
carrying our marker that no row knows (an answer lost to a crash, a reconnected account) is
adopted rather than created again.
"""

from __future__ import annotations

import uuid

from calendars.models import Calendar, FormationExport
from calendars.providers.types import EventPage, RemoteEvent, Removed
from formations.models import Formation


def exports_reconcile(calendar: Calendar, page: EventPage) -> set[str]:
    """What the learner did to exported formations, as a listing shows it: an edited event
    is written again by the next export, a deleted one is left deleted. An event carrying
    our marker that no row knows (an answer lost to a crash, a reconnected account) is
    adopted rather than created again. Returns the ids of our events on the page."""
    events = [item for item in page.items if isinstance(item, RemoteEvent | Removed)]
    ids = [item.external_id for item in events]
    # An empty page (the usual incremental answer) asks nothing: no query is even built.
    rows = (
        {
            row.external_id: row
            for row in FormationExport.objects.filter(
                integration_id=calendar.integration_id,
                calendar_external_id=calendar.external_id,
                external_id__in=ids,
            )
        }
        if ids
        else {}
    )
    changed = []
    for item in events:
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
