"""Learners whose calendars tell staff when they are busy, written here without a provider:
a connected account with one calendar imported, and busy events in it."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from accounts.models import Profile
from calendars.models import Calendar, CalendarEvent, CalendarIntegration

_ids = itertools.count(1)


def connected(user: Any, *, provider: str = "google", **integration: Any) -> Calendar:
    """The learner's account at `provider`, its primary calendar imported once already."""
    account, _ = CalendarIntegration.objects.get_or_create(
        user=user,
        provider=provider,
        defaults={"account_email": f"{user.username}@example.com", **integration},
    )
    return Calendar.objects.create(
        integration=account,
        external_id=f"calendar-{next(_ids)}",
        name="Agenda",
        is_primary=True,
        can_edit=True,
        import_enabled=True,
        last_imported_at=timezone.now(),
    )


def busy(calendar: Calendar, start: datetime, hours: float = 1, **fields: Any) -> CalendarEvent:
    """An event of the calendar from `start` for `hours`, busy unless `fields` say otherwise."""
    number = next(_ids)
    fields.setdefault("title", f"Événement {number}")
    return CalendarEvent.objects.create(
        calendar=calendar,
        external_id=f"event-{number}",
        start=start,
        end=start + timedelta(hours=hours),
        **fields,
    )


def stop_sharing(user: Any) -> None:
    Profile.objects.update_or_create(user=user, defaults={"share_busy": False})
