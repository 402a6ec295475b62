"""events.get, insert, patch, update and delete, and an event in Google's JSON shape.

https://developers.google.com/calendar/api/v3/reference/events. A series' occurrences
follow its master; a deleted occurrence is a cancelled exception of its series.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import secrets
import zoneinfo
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from dateutil.rrule import rrulestr

from sandbox.google.api import Call, calendar_of
from sandbox.google.discovery import EVENT_EXTRA_FIELDS
from sandbox.google.errors import GoogleError, not_found
from sandbox.google.formats import rfc3339_ms, zone_or_none
from sandbox.server import Response
from sandbox.store import Account, Calendar, Event, expand_series, new_google_id, utcnow

if TYPE_CHECKING:
    from sandbox.core import Sandbox


EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
PLAIN_ID = re.compile(r"[A-Za-z0-9_]+")


class Events:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store

    def _html_link(self, account: Account, calendar: Calendar, event: Event) -> str:
        event_id = event.id if PLAIN_ID.fullmatch(event.id) else quote(event.id, safe="")
        return (
            f"{self.sandbox.http_url}/_sandbox/events/{_quoted(account.email)}/"
            f"{_quoted(calendar.id)}/{event_id}"
        )

    def render(
        self,
        account: Account,
        calendar: Calendar,
        event: Event,
        *,
        zone: str | None = None,
        minimal: bool = False,
        kept: set[str] | None = None,
    ) -> dict[str, Any]:
        """An event in Google's JSON shape; `minimal` for the cancelled entries of lists.
        `kept`: the fields a partial response keeps (None: all); the dearest of the others are
        left out, the partial response drops the rest."""

        def wanted(name: str) -> bool:
            return kept is None or name in kept

        cancelled = event.deleted or event.status == "cancelled"
        if minimal and cancelled:
            entry: dict[str, Any] = {
                "kind": "calendar#event",
                "etag": event.etag,
                "id": event.id,
                "status": "cancelled",
            }
            if event.is_occurrence and event.original_start is not None:
                entry["recurringEventId"] = event.series_id
                entry["originalStartTime"] = _when(event.original_start, event.time_zone, zone)
            return entry
        organizer: dict[str, Any] = {"email": account.email, "self": True}
        if not calendar.primary:
            organizer = {"email": calendar.id, "displayName": calendar.name, "self": True}
        body: dict[str, Any] = {
            "kind": "calendar#event",
            "etag": event.etag,
            "id": event.id,
            "status": "cancelled" if cancelled else event.status,
        }
        if wanted("htmlLink"):
            body["htmlLink"] = self._html_link(account, calendar, event)
        if wanted("created"):
            body["created"] = rfc3339_ms(event.created)
        if wanted("updated"):
            body["updated"] = rfc3339_ms(event.updated)
        body["summary"] = event.title
        if event.description:
            body["description"] = event.description
        if event.location:
            body["location"] = event.location
        body["creator"] = {"email": account.email, "self": True}
        body["organizer"] = organizer
        if event.organizer:  # an invitation: the account is one of the attendees
            body["creator"] = body["organizer"] = {"email": event.organizer}
            body["attendees"] = [
                {"email": event.organizer, "organizer": True, "responseStatus": "accepted"},
                {"email": account.email, "self": True, "responseStatus": event.response},
            ]
        if event.free:
            body["transparency"] = "transparent"
        named = not event.extra.get("zoneless")
        body["start"] = _when(event.start, event.time_zone, zone, named=named)
        body["end"] = _when(event.end, event.time_zone, zone, named=named)
        if event.is_master:
            body["recurrence"] = list(event.recurrence)
        if event.is_occurrence and event.original_start is not None:
            body["recurringEventId"] = event.series_id
            if wanted("originalStartTime"):
                body["originalStartTime"] = _when(event.original_start, event.time_zone, zone)
        body["iCalUID"] = event.ical_uid
        body["sequence"] = event.extra.get("sequence", 0)
        if event.online_url and (wanted("hangoutLink") or wanted("conferenceData")):
            body.update(_conference(event.online_url))
        extended = dict(event.extra.get("extendedProperties") or {})
        if event.private_properties:
            extended["private"] = dict(event.private_properties)
        if extended:
            body["extendedProperties"] = extended
        body["reminders"] = event.extra.get("reminders") or {"useDefault": True}
        body["eventType"] = event.event_type
        for key, value in event.extra.items():
            if key in EVENT_EXTRA_FIELDS and key not in body:
                body[key] = value
        return body

    def _resource(self, event: Event) -> dict[str, Any]:
        """The writable fields of a stored event, the base a patch merges into."""
        resource: dict[str, Any] = dict(event.extra)
        named = not event.extra.get("zoneless")
        resource.update(
            summary=event.title,
            start=_when(event.start, event.time_zone, None, named=named),
            end=_when(event.end, event.time_zone, None, named=named),
            status=event.status,
            eventType=event.event_type,
            iCalUID=event.ical_uid,
        )
        if event.description:
            resource["description"] = event.description
        if event.location:
            resource["location"] = event.location
        if event.recurrence:
            resource["recurrence"] = list(event.recurrence)
        extended = dict(event.extra.get("extendedProperties") or {})
        if event.private_properties:
            extended["private"] = dict(event.private_properties)
        if extended:
            resource["extendedProperties"] = extended
        if event.online_url:
            resource["conferenceData"] = _conference(event.online_url)["conferenceData"]
        return resource

    def events_get(self, call: Call) -> Response:
        calendar = calendar_of(call)
        event = calendar.events.get(call.params["eventId"])
        if event is None:
            raise not_found()
        return Response.json(
            self.render(call.account, calendar, event, zone=call.params.get("timeZone"))
        )

    def events_insert(self, call: Call) -> Response:
        calendar = calendar_of(call, write=True)
        body = call.body
        with self.store.lock:
            event_id = body.get("id")
            if event_id is not None:
                if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
                    raise GoogleError(400, "invalid", "Invalid resource id value.")
                if event_id in calendar.events:
                    raise GoogleError(409, "duplicate", "The requested identifier already exists.")
            else:
                event_id = new_google_id()
                while event_id in calendar.events:
                    event_id = new_google_id()
            event = self._build(call, calendar, body, event_id=event_id, base=None)
            self._save(call.account, calendar, event, previous=None)
        return Response.json(self.render(call.account, calendar, event))

    def events_patch(self, call: Call) -> Response:
        return self._replace(call, merge=True)

    def events_update(self, call: Call) -> Response:
        return self._replace(call, merge=False)

    def _replace(self, call: Call, *, merge: bool) -> Response:
        calendar = calendar_of(call, write=True)
        with self.store.lock:
            base = calendar.events.get(call.params["eventId"])
            if base is None:
                raise not_found()
            resource = _merge(self._resource(base), call.body) if merge else call.body
            event = self._build(call, calendar, resource, event_id=base.id, base=base)
            self._save(call.account, calendar, event, previous=base)
        return Response.json(self.render(call.account, calendar, event))

    def events_delete(self, call: Call) -> Response:
        calendar = calendar_of(call, write=True)
        with self.store.lock:
            event = calendar.events.get(call.params["eventId"])
            if event is None:
                raise not_found()
            if event.deleted or event.status == "cancelled":
                raise GoogleError(410, "deleted", "Resource has been deleted")
            if event.is_occurrence:
                # A deleted occurrence is a cancelled exception of its series.
                event = dataclasses.replace(event, is_exception=True)
            self.store.delete(call.account, calendar, event)
        return Response(204)

    def _build(
        self,
        call: Call,
        calendar: Calendar,
        resource: dict[str, Any],
        *,
        event_id: str,
        base: Event | None,
    ) -> Event:
        """A new Event from a full resource (insert, update, or a patch merged into the old)."""
        if "start" not in resource or resource["start"] is None:
            raise GoogleError(400, "required", "Missing start time.")
        if "end" not in resource or resource["end"] is None:
            raise GoogleError(400, "required", "Missing end time.")
        start, start_zone = _parse_when(resource["start"], "start")
        end, end_zone = _parse_when(resource["end"], "end")
        if isinstance(start, datetime) != isinstance(end, datetime):
            raise GoogleError(
                400,
                "invalid",
                "Start and end times must either both be date or both be dateTime.",
            )
        if end < start or (not isinstance(start, datetime) and end == start):  # type: ignore[operator]
            raise GoogleError(
                400, "timeRangeEmpty", "The specified time range is empty.", domain="calendar"
            )
        time_zone = (
            start_zone or end_zone or (base.time_zone if base is not None else calendar.time_zone)
        )
        for name in ("summary", "description", "location"):
            if resource.get(name) is not None and not isinstance(resource[name], str):
                raise GoogleError(400, "invalid", f"Invalid value for: {name}")
        status = resource.get("status") or "confirmed"
        if status not in {"confirmed", "tentative", "cancelled"}:
            raise GoogleError(400, "invalid", f"Invalid value for: status ({status})")
        event_type = resource.get("eventType") or (base.event_type if base else "default")
        if base is None and event_type not in {
            "default",
            "outOfOffice",
            "focusTime",
            "workingLocation",
            "birthday",
        }:
            raise GoogleError(400, "invalid", f"Invalid event type: {event_type}")
        recurrence: list[str] = []
        if base is None or not base.is_occurrence:
            recurrence = _parse_recurrence(resource.get("recurrence"))
        if recurrence and isinstance(start, datetime):
            # "For recurring events this field is required" (events resource, start.timeZone).
            for name, zone_given in (("start", start_zone), ("end", end_zone)):
                if not zone_given:
                    raise GoogleError(
                        400, "required", f"Missing time zone definition for {name} time."
                    )
        extended = resource.get("extendedProperties") or {}
        if not isinstance(extended, dict):
            raise GoogleError(400, "invalid", "Invalid value for: extendedProperties")
        private = _string_map(extended.get("private"), "extendedProperties.private")
        shared = _string_map(extended.get("shared"), "extendedProperties.shared")
        extra = {k: v for k, v in resource.items() if k in EVENT_EXTRA_FIELDS}
        extra.pop("extendedProperties", None)
        if shared:
            extra["extendedProperties"] = {"shared": shared}
        sequence = base.extra.get("sequence", 0) if base is not None else 0
        if base is not None and (
            base.start != start or base.end != end or base.recurrence != recurrence
        ):
            sequence += 1
        if base is None and resource.get("sequence") is not None:
            sequence = resource["sequence"]
            if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
                raise GoogleError(400, "invalid", "Invalid sequence value.")
        extra["sequence"] = sequence
        if isinstance(start, datetime) and not (start_zone or end_zone):
            extra["zoneless"] = True  # shown in the calendar's zone, with no timeZone given
        online_url = base.online_url if base is not None else ""
        if call.params.get("conferenceDataVersion", 0) >= 1:
            online_url = _conference_url(resource.get("conferenceData"))
        deleted = base.deleted if base is not None else False
        if deleted and status != "cancelled":
            deleted = False  # an update that gives a deleted event a live status restores it
        return Event(
            id=event_id,
            calendar_id=calendar.id,
            ical_uid=(
                base.ical_uid
                if base is not None
                else str(resource.get("iCalUID") or f"{event_id}@google.com")
            ),
            title=resource.get("summary") or "",
            start=start,
            end=end,
            time_zone=time_zone,
            description=resource.get("description") or "",
            location=resource.get("location") or "",
            online_url=online_url,
            status=status,
            event_type=event_type,
            recurrence=recurrence,
            series_id=base.series_id if base is not None else "",
            original_start=base.original_start if base is not None else None,
            is_exception=base.is_occurrence if base is not None else False,
            created=base.created if base is not None else utcnow(),
            deleted=deleted,
            private_properties=private,
            extra=extra,
        )

    def _save(
        self, account: Account, calendar: Calendar, event: Event, *, previous: Event | None
    ) -> None:
        self.store.save(account, calendar, event)
        if event.is_master or (previous is not None and previous.is_master):
            self._expand(account, calendar, event)

    def _expand(self, account: Account, calendar: Calendar, master: Event) -> None:
        """Bring a series' occurrences in line with its master; exceptions are kept."""
        existing = {e.id: e for e in calendar.events.values() if e.series_id == master.id}
        fresh = expand_series(master) if master.is_master and not master.deleted else []
        kept = set()
        for occurrence in fresh:
            kept.add(occurrence.id)
            old = existing.get(occurrence.id)
            if old is not None and old.is_exception:
                continue
            occurrence.extra = {k: v for k, v in master.extra.items() if k != "sequence"}
            occurrence.extra["sequence"] = master.extra.get("sequence", 0)
            if old is not None:
                occurrence.created = old.created
                if _same_content(old, occurrence):
                    continue
            self.store.save(account, calendar, occurrence)
        for occurrence_id, old in existing.items():
            if occurrence_id not in kept and not old.deleted:
                self.store.delete(account, calendar, old)


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@functools.lru_cache(maxsize=256)
def _quoted(text: str) -> str:
    return quote(text, safe="")


def _when(
    value: datetime | date, zone: str, display_zone: str | None, *, named: bool = True
) -> dict[str, str]:
    """A start or end as Google writes it; `named`: with its timeZone (Google leaves it out
    for a single event created without one)."""
    if not isinstance(value, datetime):
        return {"date": value.isoformat()}
    shown = _zone(display_zone or zone)
    when = {"dateTime": value.astimezone(shown).isoformat()}
    if named:
        when["timeZone"] = zone
    return when


def _parse_when(value: Any, name: str) -> tuple[datetime | date, str | None]:
    if not isinstance(value, dict):
        raise GoogleError(400, "invalid", f"Invalid {name} time.")
    zone = value.get("timeZone")
    if zone is not None and (not isinstance(zone, str) or zone_or_none(zone) is None):
        raise GoogleError(400, "invalid", f"Invalid time zone definition for {name} time.")
    if value.get("date") is not None:
        try:
            return date.fromisoformat(str(value["date"])), zone
        except ValueError as error:
            raise GoogleError(400, "invalid", f"Invalid {name} time.") from error
    if value.get("dateTime") is None:
        raise GoogleError(400, "required", f"Missing {name} time.")
    text = str(value["dateTime"])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise GoogleError(400, "invalid", f"Invalid {name} time.") from error
    if "T" not in text.upper():
        raise GoogleError(400, "invalid", f"Invalid {name} time.")
    if parsed.tzinfo is None:
        if zone is None:
            raise GoogleError(400, "invalid", f"Missing time zone definition for {name} time.")
        parsed = parsed.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return parsed, zone


def _parse_recurrence(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
        raise GoogleError(400, "invalid", "Invalid recurrence rule.")
    lines = [line.strip() for line in value if line.strip()]
    if lines:
        prefixes = ("RRULE:", "EXRULE:", "RDATE", "EXDATE")
        if not all(line.upper().startswith(prefixes) for line in lines):
            raise GoogleError(400, "invalid", "Invalid recurrence rule.")
        try:
            rrulestr("\n".join(lines), dtstart=datetime(2026, 1, 1), forceset=True)
        except (ValueError, TypeError) as error:
            raise GoogleError(400, "invalid", "Invalid recurrence rule.") from error
    return lines


def _string_map(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise GoogleError(400, "invalid", f"Invalid value for: {name}")
    return dict(value)


def _conference(url: str) -> dict[str, Any]:
    meet = "meet." in urlsplit(url).netloc
    data: dict[str, Any] = {
        "entryPoints": [{"entryPointType": "video", "uri": url, "label": url.split("://", 1)[-1]}],
        "conferenceSolution": (
            {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"}
            if meet
            else {"key": {"type": "addOn"}, "name": "Video call"}
        ),
        "conferenceId": url.rstrip("/").rsplit("/", 1)[-1],
    }
    return {"hangoutLink": url, "conferenceData": data} if meet else {"conferenceData": data}


def _conference_url(value: Any) -> str:
    """The video link of a conferenceData written with conferenceDataVersion=1."""
    if not isinstance(value, dict):
        return ""
    for entry in value.get("entryPoints") or []:
        if isinstance(entry, dict) and entry.get("entryPointType") == "video" and entry.get("uri"):
            return str(entry["uri"])
    if isinstance(value.get("createRequest"), dict):
        code = secrets.token_hex(5)
        return f"https://meet.sandbox.test/{code[:3]}-{code[3:7]}-{code[7:]}"
    return ""


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Patch semantics: objects merge field by field, arrays and times are replaced."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and key not in {"start", "end", "originalStartTime", "conferenceData"}
        ):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _same_content(a: Event, b: Event) -> bool:
    fields = [
        "title",
        "description",
        "location",
        "start",
        "end",
        "time_zone",
        "online_url",
        "status",
        "event_type",
        "private_properties",
        "extra",
        "deleted",
    ]
    return all(getattr(a, name) == getattr(b, name) for name in fields)
