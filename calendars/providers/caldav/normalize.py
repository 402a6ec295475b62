"""iCalendar resources in our shape, and formations as iCalendar.

A CalDAV calendar holds resources, one per series or single event, each named by the client
that wrote it; a series comes whole (its rule and its changed occurrences, RFC 5545 section
3.8.4.4). Occurrences are always expanded here with recurring-ical-events, whatever the server
could do (CALDAV:expand is optional and unevenly implemented), so every server lists alike.
https://www.rfc-editor.org/rfc/rfc5545 and https://www.rfc-editor.org/rfc/rfc4791#section-9.6.5
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from django.conf import settings

from calendars.providers.types import ExportedFormation, RemoteEvent

# The property that names the formation an exported event stands for (X- properties are kept
# by CalDAV servers, RFC 5545 section 3.8.8.2), and the UID it is also written in.
FORMATION_PROPERTY = "X-FORMATION-ID"
UID_PATTERN = re.compile(r"^formation-([0-9a-f-]{36})@")
PRODID = "-//Formations//Calendar export//FR"
# The learner's answer to an invitation, from their ATTENDEE's PARTSTAT (RFC 5545 3.2.12).
PARTSTATS = {
    "NEEDS-ACTION": "needs_action",
    "ACCEPTED": "accepted",
    "TENTATIVE": "tentative",
    "DECLINED": "declined",
}


@dataclass
class Resource:
    """One calendar resource as listed: its name (the event id), ETag and iCalendar text."""

    name: str
    etag: str
    data: str


@dataclass
class Expanded:
    """What a resource gives in a window: its events, whether it is a series, and how many of
    its components could not be read."""

    events: list[RemoteEvent] = field(default_factory=list)
    recurring: bool = False
    skipped: int = 0
    cancelled: bool = False


def occurrence_id(name: str, recurrence_id: date | datetime) -> str:
    """A stable id for one occurrence of the series in resource `name`: its RECURRENCE-ID,
    the original start, which moving the occurrence does not change."""
    if isinstance(recurrence_id, datetime):
        if recurrence_id.tzinfo is not None:
            recurrence_id = recurrence_id.astimezone(UTC)
        return f"{name}#{recurrence_id.strftime('%Y%m%dT%H%M%S')}{'Z' * bool(recurrence_id.tzinfo)}"
    return f"{name}#{recurrence_id.strftime('%Y%m%d')}"


def expand(
    resource: Resource,
    window: tuple[datetime, datetime],
    *,
    username: str = "",
    floating: tzinfo = UTC,
) -> Expanded:
    """The events of `resource` overlapping `window`: a single event, or the occurrences of a
    series (its rule, RDATEs, EXDATEs and changed occurrences applied); a time without a zone
    is read in `floating`."""
    result = Expanded()
    try:
        calendar = icalendar.Calendar.from_ical(resource.data)
        events = [c for c in calendar.walk("VEVENT")]
    except (ValueError, KeyError, TypeError, IndexError):
        result.skipped = 1
        return result
    if not events:
        return result  # a VTODO or VJOURNAL in a calendar that takes them: not an event
    result.recurring = any("RRULE" in e or "RDATE" in e or "RECURRENCE-ID" in e for e in events)
    if not result.recurring:
        event = events[0]
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            result.cancelled = True
            return result
        item = _remote_event(event, resource, resource.name, "", username, floating)
        if item is None:
            result.skipped = 1
        elif (item.start < window[1] and item.end > window[0]) or _instant_in(item, window):
            result.events.append(item)
        return result
    try:
        occurrences = list(recurring_ical_events.of(calendar).between(*window))
    except Exception:  # the library raises its own types, and others on malformed rules
        result.skipped = 1
        return result
    for occurrence in occurrences:
        if str(occurrence.get("STATUS", "")).upper() == "CANCELLED":
            continue
        recurrence = occurrence.get("RECURRENCE-ID")
        start = recurrence.dt if recurrence is not None else occurrence["DTSTART"].dt
        item = _remote_event(
            occurrence, resource, occurrence_id(resource.name, start), resource.name, username,
            floating,
        )  # fmt: skip
        if item is None:
            result.skipped += 1
        else:
            result.events.append(item)
    return result


def _instant_in(item: RemoteEvent, window: tuple[datetime, datetime]) -> bool:
    """An event of no duration at an instant of the window (RFC 4791 section 9.9)."""
    return item.start == item.end and window[0] <= item.start < window[1]


def _remote_event(
    event: Any,
    resource: Resource,
    external_id: str,
    series_id: str,
    username: str,
    floating: tzinfo = UTC,
) -> RemoteEvent | None:
    try:
        begins = event["DTSTART"].dt
        if "DTEND" in event:
            ends = event["DTEND"].dt
        elif "DURATION" in event:
            ends = begins + event["DURATION"].dt
        else:  # RFC 5545 3.6.1: a day for a date, no duration for a date-time
            ends = begins + timedelta(days=1) if not isinstance(begins, datetime) else begins
    except (KeyError, TypeError, AttributeError):
        return None
    if isinstance(begins, datetime) != isinstance(ends, datetime):
        return None
    if isinstance(begins, datetime):
        start, end = _aware(begins, floating), _aware(ends, floating)
        if end < start:
            return None
        zone = getattr(begins.tzinfo, "key", "") or ""
        times: dict[str, Any] = {"start": start, "end": end, "time_zone": zone}
    else:
        if ends <= begins:
            return None
        times = {
            "all_day": True,
            "start_date": begins,
            "end_date": ends,
            "start": datetime.combine(begins, datetime.min.time(), UTC),
            "end": datetime.combine(ends, datetime.min.time(), UTC),
        }
    uid = str(event.get("UID", ""))
    marker = str(event.get(FORMATION_PROPERTY, ""))
    if not marker and (found := UID_PATTERN.match(uid)):
        marker = found.group(1)
    status = str(event.get("STATUS", "CONFIRMED")).lower()
    return RemoteEvent(
        external_id=external_id,
        title=str(event.get("SUMMARY", "")),
        description=str(event.get("DESCRIPTION", "")),
        location=str(event.get("LOCATION", "")),
        online_url=str(event.get("CONFERENCE", "") or ""),
        ical_uid=uid,
        status=status if status in ("confirmed", "tentative") else "confirmed",
        series_id=series_id,
        change_marker=resource.etag,
        response=_response(event, username),
        busy=str(event.get("TRANSP", "OPAQUE")).upper() != "TRANSPARENT",
        formation_marker=marker,
        **times,
    )


def _aware(moment: datetime, floating: tzinfo) -> datetime:
    """A floating time (no zone, RFC 5545 3.3.5 form #1) read in `floating`."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=floating)).astimezone(UTC)


def zone_of(calendar_timezone: str) -> str:
    """The IANA name of the zone a calendar-timezone property (RFC 4791 5.2.2: an iCalendar
    object holding one VTIMEZONE) names, or "" when it names none we know."""
    if not calendar_timezone:
        return ""
    try:
        found = icalendar.Calendar.from_ical(calendar_timezone).walk("VTIMEZONE")
    except (ValueError, KeyError, TypeError, IndexError):
        return ""
    name = str(found[0].get("TZID", "")) if found else ""
    try:
        ZoneInfo(name)
    except (ValueError, KeyError):  # KeyError: ZoneInfoNotFoundError
        return ""
    return name


def floating_zone(name: str) -> ZoneInfo:
    """The zone floating times are read in: the calendar's, else the site's (TIME_ZONE)."""
    return ZoneInfo(name or settings.TIME_ZONE)


def _response(event: Any, username: str) -> str:
    """The learner's PARTSTAT when someone else organises the event; "" otherwise."""
    organizer = str(event.get("ORGANIZER", "")).lower().removeprefix("mailto:")
    if not organizer or not username or organizer == username.lower():
        return ""
    attendees = event.get("ATTENDEE", [])
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        if str(attendee).lower().removeprefix("mailto:") == username.lower():
            partstat = str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
            return PARTSTATS.get(partstat, "needs_action")
    return ""


def ical_uid(formation_uid: str) -> str:
    """The UID of the formation's event: the same in every calendar (a UID is unique within
    one calendar collection only, RFC 4791 section 5.3.2.1)."""
    return f"formation-{formation_uid}@formations"


def event_body(formation: ExportedFormation) -> dict[str, Any]:
    """The formation as an iCalendar resource, its times in the formation's zone with that
    zone's VTIMEZONE (RFC 4791 section 4.1 wants the zones a resource uses in it)."""
    zone = ZoneInfo(formation.time_zone)
    calendar = icalendar.Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    event = icalendar.Event()
    event.add("UID", ical_uid(formation.uid))
    # DTSTAMP is derived from the content, not the clock: the same formation gives the same
    # text, so an export sent again changes nothing at the server.
    event.add("DTSTAMP", formation.start.astimezone(UTC))
    event.add("DTSTART", formation.start.astimezone(zone))
    event.add("DTEND", formation.end.astimezone(zone))
    event.add("SUMMARY", formation.title)
    event.add("DESCRIPTION", formation.description)
    if formation.location:
        event.add("LOCATION", formation.location)
    event.add("URL", formation.url)
    event.add(FORMATION_PROPERTY, formation.uid)
    calendar.add_component(event)
    calendar.add_missing_timezones()
    return {"ical": calendar.to_ical().decode(), "uid": ical_uid(formation.uid)}
