"""Graph's events in our shape, and formations in Graph's.

https://learn.microsoft.com/graph/api/resources/event
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.html import strip_tags

from calendars.providers.outlook.graph import graph_datetime
from calendars.providers.types import ExportedFormation, RemoteEvent, Removed
from core.timezones import iana_zone, windows_zone

FORMATION_PROPERTY_NAME = "Name formationId"  # of the single-value extended property we set
# Our own GUID for the property set: https://learn.microsoft.com/graph/api/resources/extended-properties-overview
FORMATION_PROPERTY_ID = "String {66f5a359-4659-4638-81e0-9b8e2e3a2b5a} " + FORMATION_PROPERTY_NAME
# Exports create events with a transactionId of this prefix (Graph de-duplicates creates on
# it). Delta listings carry no extended property, but they do carry transactionId: that is how
# an import recognises an exported formation there.
EXPORT_TRANSACTION_PREFIX = "formation-"
# What `remote_event` reads, and how the learner shows as and answered: a listing that takes
# `$select` asks for these and no more (the body, which no page shows, is never asked for).
# calendarView/delta takes no `$select` (https://learn.microsoft.com/graph/api/event-delta).
EVENT_FIELDS = (
    "id,type,seriesMasterId,start,end,isAllDay,isCancelled,subject,location,onlineMeeting,"
    "onlineMeetingUrl,originalStartTimeZone,iCalUId,changeKey,webLink,transactionId,showAs,"
    "responseStatus,isOrganizer"
)


def remote_event(item: Any) -> RemoteEvent | Removed | None:
    """A Graph event in our shape; None when it cannot be understood."""
    if not isinstance(item, dict) or not item.get("id"):
        return None
    if "@removed" in item or item.get("isCancelled"):
        return Removed(item["id"])
    if item.get("type") == "seriesMaster":  # calendarView gives the occurrences themselves
        return None
    try:
        zone_name = item["start"].get("timeZone") or "UTC"
        zone = ZoneInfo(iana_zone(zone_name) or "UTC")
        begins = graph_datetime(item["start"]["dateTime"])
        ends = graph_datetime(item["end"]["dateTime"])
        if ends < begins:
            return None
        if item.get("isAllDay"):
            # Midnight to midnight in the zone asked for: the dates are what count.
            times: dict[str, Any] = {
                "all_day": True,
                "start_date": begins.date(),
                "end_date": ends.date(),
                "start": datetime.combine(begins.date(), datetime.min.time(), UTC),
                "end": datetime.combine(ends.date(), datetime.min.time(), UTC),
            }
            if times["end_date"] <= times["start_date"]:
                return None
        else:
            times = {
                "start": begins.replace(tzinfo=zone).astimezone(UTC),
                "end": ends.replace(tzinfo=zone).astimezone(UTC),
            }
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    body = item.get("body") or {}
    description = body.get("content") or ""
    if body.get("contentType") == "html":
        description = html.unescape(strip_tags(description)).strip()
    transaction = str(item.get("transactionId") or "")
    marker = next(
        (
            p.get("value", "")
            for p in item.get("singleValueExtendedProperties") or []
            if str(p.get("id", "")).endswith(FORMATION_PROPERTY_NAME)
        ),
        _uid_of_transaction(transaction),
    )
    return RemoteEvent(
        external_id=item["id"],
        title=item.get("subject") or "",
        description=description,
        location=(item.get("location") or {}).get("displayName") or "",
        online_url=(item.get("onlineMeeting") or {}).get("joinUrl")
        or item.get("onlineMeetingUrl")
        or "",
        time_zone=iana_zone(item.get("originalStartTimeZone") or "") or "",
        ical_uid=item.get("iCalUId") or "",
        series_id=item.get("seriesMasterId") or "",
        change_marker=item.get("changeKey") or "",
        html_link=item.get("webLink") or "",
        response=_response(item),
        busy=item.get("showAs") not in {"free", "workingElsewhere"},
        formation_marker=marker,
        **times,
    )


# Graph's responseStatus.response, in our words ("organizer" and "none": the learner's own).
GRAPH_RESPONSES = {
    "notResponded": "needs_action",
    "accepted": "accepted",
    "tentativelyAccepted": "tentative",
    "declined": "declined",
}


def _response(item: dict[str, Any]) -> str:
    """The learner's answer when someone else organises the event (`isOrganizer` false).
    https://learn.microsoft.com/graph/api/resources/responsestatus"""
    if item.get("isOrganizer", True):
        return ""
    response = (item.get("responseStatus") or {}).get("response")
    return GRAPH_RESPONSES.get(str(response), "needs_action")


def _uid_of_transaction(transaction: str) -> str:
    """`formation-<uid>-<copy>` gives the formation's uid; other transactionIds give ""."""
    if not transaction.startswith(EXPORT_TRANSACTION_PREFIX):
        return ""
    return transaction[len(EXPORT_TRANSACTION_PREFIX) :].rpartition("-")[0] or transaction


def event_body(formation: ExportedFormation) -> dict[str, Any]:
    """https://learn.microsoft.com/graph/api/resources/event: local times with Outlook's
    (Windows) name of the formation's zone, and our single-value extended property."""
    zone = ZoneInfo(formation.time_zone)
    local = "%Y-%m-%dT%H:%M:%S"
    return {
        "subject": formation.title,
        "body": {"contentType": "text", "content": formation.description},
        "start": {
            "dateTime": formation.start.astimezone(zone).strftime(local),
            "timeZone": windows_zone(formation.time_zone),
        },
        "end": {
            "dateTime": formation.end.astimezone(zone).strftime(local),
            "timeZone": windows_zone(formation.time_zone),
        },
        "location": {"displayName": formation.location},
        "singleValueExtendedProperties": [{"id": FORMATION_PROPERTY_ID, "value": formation.uid}],
    }
