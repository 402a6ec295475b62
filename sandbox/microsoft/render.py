"""How Graph renders: events and calendars as JSON, in the view a request asks for.

The view: the time zone (`Prefer: outlook.timezone`), the body type, the page size, `$select`
and `$expand` of extended properties. https://learn.microsoft.com/graph/api/resources/event
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from core.timezones import iana_zone, windows_zone
from sandbox.microsoft.errors import not_in_delta
from sandbox.microsoft.formats import stamp, tz
from sandbox.microsoft.odata import odata, parse_expand
from sandbox.microsoft.recurrence import recurrence_json
from sandbox.pages import event_path
from sandbox.server import HTTPError, Request
from sandbox.store import CONSUMERS_TENANT_ID, Account, Calendar, Event, as_utc

DEFAULT_PAGE_SIZE = 10  # calendarView, events and delta pages when no size is asked for
MAX_PAGE_SIZE = 1000


@dataclass
class View:
    """How a Graph response renders events: time zone, body type, $select, $expand."""

    base: str
    zone_name: str = "UTC"
    zone: tzinfo = UTC
    text_body: bool = False
    page_size: int | None = None
    select: set[str] | None = None
    expand_ids: list[str] | None = None
    applied: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        return {"Preference-Applied": ", ".join(self.applied)} if self.applied else {}


EVENT_PROPERTIES = {
    "allowNewTimeProposals",
    "attendees",
    "body",
    "bodyPreview",
    "categories",
    "changeKey",
    "createdDateTime",
    "end",
    "hasAttachments",
    "hideAttendees",
    "iCalUId",
    "id",
    "importance",
    "isAllDay",
    "isCancelled",
    "isDraft",
    "isOnlineMeeting",
    "isOrganizer",
    "isReminderOn",
    "lastModifiedDateTime",
    "location",
    "locations",
    "onlineMeeting",
    "onlineMeetingProvider",
    "onlineMeetingUrl",
    "organizer",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "recurrence",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "responseStatus",
    "sensitivity",
    "seriesMasterId",
    "showAs",
    "start",
    "subject",
    "transactionId",
    "type",
    "webLink",
    "singleValueExtendedProperties",
    "multiValueExtendedProperties",
    "attachments",
    "calendar",
    "extensions",
    "instances",
}


def _graph_dt(value: datetime) -> str:
    """Graph's dateTime: local wall time with seven decimals and no offset."""
    if value.year < 1000:  # strftime writes such a year with fewer than four digits
        return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}0"
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "0"  # faster


def _change_key(event: Event) -> str:
    digest = hashlib.sha256(f"{event.id}:{event.seq}".encode()).digest()
    return base64.b64encode(digest[:22]).decode()


def etag(event: Event) -> str:
    return f'W/"{_change_key(event)}"'


_HTML_TAG = re.compile(
    r"<\s*/?\s*(p|a|div|br|b|i|u|em|strong|span|ul|ol|li|html|body|table)\b", re.I
)
_TAGS = re.compile(r"<[^>]*>")


def _looks_like_html(text: str) -> bool:
    return bool(_HTML_TAG.search(text))


@functools.lru_cache(maxsize=1024)  # bodies repeat (a series' occurrences, invitations)
def _html_to_text(content: str) -> str:
    text = re.sub(r"(?i)<\s*(br|/p|/div|/li)\s*/?>", "\n", content)
    text = html.unescape(_TAGS.sub("", text))
    return re.sub(r"[ \t]+", " ", text).strip()


def selected(request: Request, properties: set[str], type_name: str) -> set[str] | None:
    """The properties `$select` names (None without it); an unknown one is refused as Graph
    refuses it."""
    fields = odata(request, "select")
    if not fields:
        return None
    names = {f.strip() for f in fields.split(",") if f.strip()}
    unknown = names - properties
    if unknown:
        raise HTTPError(
            400,
            "RequestBroker--ParseUri",
            f"Could not find a property named '{sorted(unknown)[0]}' on type "
            f"'Microsoft.OutlookServices.{type_name}'.",
        )
    return names


def view_of(request: Request, *, select: bool = True, expand: bool = True) -> View:
    view = View(base=request.base_url)
    prefer = request.headers.get("prefer", "")
    for match in re.finditer(r'([\w.\-]+)\s*=\s*(?:"([^"]*)"|([^,;\s]+))', prefer):
        name, value = match[1].lower(), match[2] if match[2] is not None else match[3]
        if name == "outlook.timezone":
            iana = iana_zone(value)
            if iana is None:
                raise HTTPError(
                    400,
                    "TimeZoneNotSupportedException",
                    "A valid TimeZone "
                    "value must be specified. The following TimeZone value is "
                    f"not supported: '{value}'.",
                )
            view.zone_name, view.zone = value, tz(iana)
            view.applied.append(f'outlook.timezone="{value}"')
        elif name == "outlook.body-content-type" and value.lower() in {"text", "html"}:
            view.text_body = value.lower() == "text"
            view.applied.append(f'outlook.body-content-type="{value.lower()}"')
        elif name == "odata.maxpagesize" and value.isdigit() and int(value) > 0:
            view.page_size = min(int(value), MAX_PAGE_SIZE)
            view.applied.append(f"odata.maxpagesize={view.page_size}")
    if odata(request, "select"):
        if not select:
            raise not_in_delta("select")
        view.select = selected(request, EVENT_PROPERTIES, "Event")
    expansion = odata(request, "expand")
    if expansion:
        if not expand:
            raise not_in_delta("expand")
        view.expand_ids = parse_expand(expansion)
    return view


def _times(event: Event, view: View) -> tuple[dict[str, str], dict[str, str]]:
    if event.all_day:
        # Graph gives all-day events as midnight to midnight in the zone asked for.
        start = {
            "dateTime": f"{event.start.isoformat()}T00:00:00.0000000",
            "timeZone": view.zone_name,
        }
        end = {
            "dateTime": f"{event.end.isoformat()}T00:00:00.0000000",
            "timeZone": view.zone_name,
        }
    else:
        start = {
            "dateTime": _graph_dt(event.start_utc().astimezone(view.zone)),
            "timeZone": view.zone_name,
        }
        end = {
            "dateTime": _graph_dt(event.end_utc().astimezone(view.zone)),
            "timeZone": view.zone_name,
        }
    return start, end


def _kind(event: Event) -> str:
    if event.is_master:
        return "seriesMaster"
    if event.is_occurrence:
        return "exception" if event.is_exception else "occurrence"
    return "singleInstance"


def bare_json(event: Event, view: View) -> dict[str, Any]:
    """An occurrence as delta gives it: what `event_json` says of it, but only its ids, type
    and times (sandbox/microsoft/delta.py)."""
    start, end = _times(event, view)
    return {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": etag(event),
        "id": event.id,
        "type": _kind(event),
        "seriesMasterId": event.series_id or None,
        "start": start,
        "end": end,
    }


def event_json(account: Account, event: Event, view: View, pages_url: str) -> dict[str, Any]:
    extra = event.extra.get("graph")
    graph: dict[str, Any] = extra if isinstance(extra, dict) else {}
    start, end = _times(event, view)
    kind = _kind(event)
    description = event.description or ""
    body_type = graph.get("bodyType", "html" if _looks_like_html(description) else "text")
    content = description
    if body_type != "html":
        content = html.escape(description).replace("\n", "<br>\r\n")
    text = _html_to_text(content) if content else ""
    if view.text_body:
        body = {"contentType": "text", "content": text}
    else:
        wrapped = (
            '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; '
            f'charset=utf-8">\r\n</head>\r\n<body>\r\n{content}\r\n</body>\r\n</html>\r\n'
            if content
            else ""
        )
        body = {"contentType": "html", "content": wrapped}
    zone = windows_zone(event.time_zone)
    location = {
        "displayName": event.location,
        "locationType": "default",
        "uniqueIdType": "unknown",
        "address": {},
        "coordinates": {},
    }
    calendar = account.calendars.get(event.calendar_id)
    web_link = pages_url + (event_path(account, calendar, event) if calendar else "")
    change_key = _change_key(event)
    data: dict[str, Any] = {
        "@odata.etag": f'W/"{change_key}"',
        "id": event.id,
        "createdDateTime": stamp(event.created),
        "lastModifiedDateTime": stamp(event.updated),
        "changeKey": change_key,
        "categories": graph.get("categories", []),
        "transactionId": event.transaction_id or None,
        "originalStartTimeZone": zone,
        "originalEndTimeZone": zone,
        "iCalUId": event.ical_uid,
        "reminderMinutesBeforeStart": graph.get(
            "reminderMinutesBeforeStart", 1080 if event.all_day else 15
        ),
        "isReminderOn": graph.get("isReminderOn", True),
        "hasAttachments": False,
        "subject": event.title,
        "bodyPreview": text[:255],
        "importance": graph.get("importance", "normal"),
        "sensitivity": graph.get("sensitivity", "normal"),
        "isAllDay": event.all_day,
        "isCancelled": event.status == "cancelled",
        "isOrganizer": not event.organizer,
        "responseRequested": graph.get("responseRequested", True),
        "seriesMasterId": event.series_id or None,
        "showAs": _show_as(event, graph),
        "type": kind,
        "webLink": web_link,
        # Teams meetings leave this legacy field empty: the link is in onlineMeeting.
        "onlineMeetingUrl": None,
        "isOnlineMeeting": bool(event.online_url),
        "onlineMeetingProvider": "teamsForBusiness" if event.online_url else "unknown",
        "allowNewTimeProposals": graph.get("allowNewTimeProposals", True),
        "isDraft": graph.get("isDraft", False),
        "hideAttendees": graph.get("hideAttendees", False),
        "responseStatus": _response_status(event),
        "body": body,
        "start": start,
        "end": end,
        "location": location,
        "locations": graph.get("locations")
        or (
            [
                {
                    "displayName": event.location,
                    "locationType": "default",
                    "uniqueIdType": "unknown",
                }
            ]
            if event.location
            else []
        ),
        "recurrence": recurrence_json(event) if event.is_master else None,
        "attendees": graph.get("attendees", [])
        if not event.organizer
        else [
            {
                "type": "required",
                "status": _response_status(event),
                "emailAddress": {"name": account.name, "address": account.email},
            }
        ],
        "organizer": {
            "emailAddress": {"name": event.organizer, "address": event.organizer}
            if event.organizer
            else {"name": account.name, "address": account.email}
        },
        "onlineMeeting": {"joinUrl": event.online_url} if event.online_url else None,
    }
    if event.is_occurrence and event.original_start is not None:
        data["originalStart"] = stamp(as_utc(event.original_start, event.time_zone))
    if view.expand_ids is not None:
        found = [
            {"id": key, "value": value}
            for key, value in event.private_properties.items()
            if key in view.expand_ids
        ]
        if found:  # Graph leaves the collection out when nothing matches
            data["singleValueExtendedProperties"] = found
    if view.select is not None:
        keep = view.select | {"id", "@odata.etag"}
        if view.expand_ids is not None:
            keep.add("singleValueExtendedProperties")
        data = {k: v for k, v in data.items() if k in keep}
    return data


# https://learn.microsoft.com/graph/api/resources/calendar (v1.0)
CALENDAR_PROPERTIES = {
    "id", "name", "color", "hexColor", "isDefaultCalendar", "changeKey", "canShare",
    "canViewPrivateItems", "canEdit", "allowedOnlineMeetingProviders",
    "defaultOnlineMeetingProvider", "isTallyingResponses", "isRemovable", "owner",
}  # fmt: skip


def calendar_json(account: Account, calendar: Calendar) -> dict[str, Any]:
    color = {"#0b5cad": "lightBlue", "#2e7d32": "lightGreen", "#a1261c": "lightRed"}
    digest = hashlib.sha256(f"{calendar.id}:{calendar.name}:{calendar.can_edit}".encode())
    work = account.tenant_id != CONSUMERS_TENANT_ID
    provider = "teamsForBusiness" if work else "skypeForConsumer"
    return {
        "id": calendar.id,
        "name": calendar.name,
        "color": color.get(calendar.color.lower(), "auto"),
        "hexColor": calendar.color,
        "isDefaultCalendar": calendar.primary,
        "changeKey": base64.b64encode(digest.digest()[:22]).decode(),
        "canShare": calendar.primary,
        "canViewPrivateItems": calendar.primary,
        "canEdit": calendar.can_edit,
        "allowedOnlineMeetingProviders": [provider],
        "defaultOnlineMeetingProvider": provider if calendar.can_edit else "none",
        "isTallyingResponses": calendar.can_edit,
        "isRemovable": not calendar.primary,
        "owner": {"name": account.name, "address": account.email},
    }


# The account's answer to an invitation, in Graph's words (responseStatus.response).
GRAPH_RESPONSES = {
    "accepted": "accepted",
    "tentative": "tentativelyAccepted",
    "declined": "declined",
    "needsAction": "notResponded",
}


def _response_status(event: Event) -> dict[str, str]:
    if not event.organizer:
        return {"response": "organizer", "time": "0001-01-01T00:00:00Z"}
    answered = event.response in {"accepted", "tentative", "declined"}
    return {
        "response": GRAPH_RESPONSES.get(event.response, "none"),
        "time": stamp(event.updated) if answered else "0001-01-01T00:00:00Z",
    }


def _show_as(event: Event, graph: dict[str, Any]) -> str:
    """free, tentative, busy, oof, workingElsewhere: how the time shows to others."""
    if event.free:
        return "free"
    if event.organizer and event.response in {"tentative", "needsAction"}:
        return "tentative"
    return str(graph.get("showAs", "free" if event.all_day else "busy"))
