"""iCalendar (RFC 5545) export of formations. Pure: formations in, bytes out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.utils import timezone
from icalendar import Calendar, Event

from formations.models import Formation

PRODID = "-//Formations//Calendar integration//FR"


def formation_ics_uid(formation: Formation) -> str:
    """Stable across hosts, databases and edits: calendar programs match updates on it."""
    return f"formation-{formation.uid}"


def build_ics(
    formations: Iterable[Formation],
    *,
    absolute_url: Callable[[Formation], str],
    name: str | None = None,
    now: datetime | None = None,
) -> bytes:
    stamp = now or timezone.now()
    calendar = Calendar.new(prodid=PRODID, method="PUBLISH", calscale="GREGORIAN", name=name)
    del calendar["UID"]  # Calendar.new() adds a random one: the same formations give the same file.
    formations = list(formations)
    for formation in formations:
        url = absolute_url(formation)
        description = "\n\n".join(part for part in (formation.description.strip(), url) if part)
        event = Event.new(
            uid=formation_ics_uid(formation),
            summary=formation.title,
            description=description,
            start=formation.start.astimezone(formation.tz),
            end=formation.end.astimezone(formation.tz),
            location=formation.location or formation.online_url or None,
            url=url,
            status="CANCELLED" if formation.is_cancelled else "CONFIRMED",
            sequence=formation.sequence,
            stamp=stamp,
            created=formation.created_at,
            last_modified=formation.updated_at,
        )
        if formation.online_url:
            event.add("conference", formation.online_url, parameters={"VALUE": "URI"})
        calendar.add_component(event)
    if formations:
        # Time zone definitions only for the years the events span, not 1970-2038.
        calendar.add_missing_timezones(
            first_date=min(f.start for f in formations).date() - timedelta(days=1),
            last_date=max(f.end for f in formations).date() + timedelta(days=366),
        )
    return calendar.to_ical()
