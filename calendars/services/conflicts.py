"""A learner's "je m'en occupe" on a conflict between one of their events and one of their
formations: it holds until either moves."""

from __future__ import annotations

from typing import Any

from calendars.availability import busy_events, conflict_fingerprint
from calendars.models import CalendarEvent, ConflictDismissal
from formations.models import Formation


def conflict_dismiss(*, user: Any, formation_id: int, event_id: int) -> bool:
    """Marks the conflict as handled by the learner. False (nothing done) when the formation
    or the event is not theirs, or they no longer overlap."""
    formation = Formation.objects.for_learner(user).filter(pk=formation_id).first()
    event = busy_events([user.pk]).filter(pk=event_id).first()
    if formation is None or event is None or not _overlap(formation, event):
        return False
    ConflictDismissal.objects.update_or_create(
        user=user,
        formation=formation,
        event=event,
        defaults={
            "fingerprint": conflict_fingerprint(
                formation.start, formation.end, event.start, event.end
            )
        },
    )
    return True


def conflict_restore(*, user: Any, formation_id: int, event_id: int) -> None:
    """Shows the conflict again (the learner changed their mind)."""
    ConflictDismissal.objects.filter(
        user=user, formation_id=formation_id, event_id=event_id
    ).delete()


def _overlap(formation: Formation, event: CalendarEvent) -> bool:
    return event.start < formation.end and event.end > formation.start
