"""Google's events in our shape, and formations in Google's.

https://developers.google.com/calendar/api/v3/reference/events#resource
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from calendars.providers.types import ExportedFormation, RemoteEvent, Removed

# The private extended property that names the formation an exported event stands for.
FORMATION_PROPERTY = "formationId"
# Event types imported; others (workingLocation, birthday, types Google adds later) are not
# calendar entries a learner means to see beside formations: skipped and counted.
IMPORTED_TYPES = {"default", "fromGmail", "outOfOffice", "focusTime"}
# What `remote_event` reads, as a partial response asks for it (`fields`), with the paging and
# sync tokens: a listing carries these and no more. The description, which no page shows and
# the import does not keep, is never asked for. Fields left out here are absent from the
# answer, so a new one `remote_event` reads goes here too (a test checks both agree).
# https://developers.google.com/calendar/api/guides/performance#partial-response
LISTED_FIELDS = (
    "nextPageToken,nextSyncToken,items(id,status,eventType,start,end,summary,location,"
    "hangoutLink,conferenceData/entryPoints(entryPointType,uri),iCalUID,recurringEventId,"
    "etag,htmlLink,transparency,extendedProperties/private,organizer/self,"
    "attendees(self,organizer,responseStatus))"
)


def remote_event(item: Any) -> RemoteEvent | Removed | None:
    """A Google event in our shape; None when it cannot be understood."""
    if not isinstance(item, dict) or not item.get("id"):
        return None
    if item.get("status") == "cancelled":
        return Removed(item["id"])
    if item.get("eventType", "default") not in IMPORTED_TYPES:
        return None
    try:
        start, end = item["start"], item["end"]
        if "date" in start:
            start_date, end_date = (
                date.fromisoformat(start["date"]),
                date.fromisoformat(end["date"]),
            )
            if end_date <= start_date:
                return None
            times = {
                "all_day": True,
                "start_date": start_date,
                "end_date": end_date,
                "start": datetime.combine(start_date, datetime.min.time(), UTC),
                "end": datetime.combine(end_date, datetime.min.time(), UTC),
            }
        else:
            begins = datetime.fromisoformat(start["dateTime"])
            ends = datetime.fromisoformat(end["dateTime"])
            if begins.tzinfo is None or ends.tzinfo is None or ends < begins:
                return None
            times = {"start": begins.astimezone(UTC), "end": ends.astimezone(UTC)}
    except (KeyError, TypeError, ValueError):
        return None
    entry_points = (item.get("conferenceData") or {}).get("entryPoints") or []
    video = next((e.get("uri") for e in entry_points if e.get("entryPointType") == "video"), "")
    private = (item.get("extendedProperties") or {}).get("private") or {}
    return RemoteEvent(
        external_id=item["id"],
        title=item.get("summary") or "",
        description=item.get("description") or "",
        location=item.get("location") or "",
        online_url=item.get("hangoutLink") or video or "",
        time_zone=item["start"].get("timeZone") or "",
        ical_uid=item.get("iCalUID") or "",
        status=item.get("status") or "confirmed",
        series_id=item.get("recurringEventId") or "",
        change_marker=item.get("etag") or "",
        html_link=item.get("htmlLink") or "",
        response=_response(item),
        busy=item.get("transparency") != "transparent",
        formation_marker=private.get(FORMATION_PROPERTY, ""),
        **times,
    )


# Google's attendee responseStatus, in our words.
GOOGLE_RESPONSES = {
    "needsAction": "needs_action",
    "accepted": "accepted",
    "tentative": "tentative",
    "declined": "declined",
}


def _response(item: dict[str, Any]) -> str:
    """The learner's answer, from their own entry among the attendees (`self`), when someone
    else organises the event; "" for their own events.
    https://developers.google.com/calendar/api/v3/reference/events#attendees"""
    if (item.get("organizer") or {}).get("self"):
        return ""
    for attendee in item.get("attendees") or []:
        if isinstance(attendee, dict) and attendee.get("self") and not attendee.get("organizer"):
            return GOOGLE_RESPONSES.get(str(attendee.get("responseStatus")), "needs_action")
    return ""


def event_body(formation: ExportedFormation) -> dict[str, Any]:
    """The event standing for `formation`, for events.insert and events.patch."""
    zone = ZoneInfo(formation.time_zone)
    return {
        "summary": formation.title,
        "description": formation.description,
        "location": formation.location,
        "start": {
            "dateTime": formation.start.astimezone(zone).isoformat(),
            "timeZone": formation.time_zone,
        },
        "end": {
            "dateTime": formation.end.astimezone(zone).isoformat(),
            "timeZone": formation.time_zone,
        },
        "source": {"title": formation.title[:200], "url": formation.url},
        "extendedProperties": {"private": {FORMATION_PROPERTY: formation.uid}},
    }
