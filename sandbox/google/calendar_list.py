"""calendarList.list, calendarList.get and calendars.get: an account's calendars.

https://developers.google.com/calendar/api/v3/reference/calendarList
"""

from __future__ import annotations

from typing import Any

from sandbox.google.api import Call, calendar_of
from sandbox.google.errors import full_sync_required, invalid_parameter
from sandbox.google.formats import Sealer, etag, role
from sandbox.server import Response
from sandbox.store import Calendar, Store

CALENDAR_LIST_PAGE_SIZE = (100, 250)  # default, maximum


class Calendars:
    def __init__(self, store: Store, sealer: Sealer) -> None:
        self.store = store
        self.sealer = sealer

    def _calendar_list_entry(self, calendar: Calendar) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "kind": "calendar#calendarListEntry",
            "etag": etag(f"{calendar.id}:{calendar.name}:{calendar.color}"),
            "id": calendar.id,
            "summary": calendar.name,
            "timeZone": calendar.time_zone,
            "colorId": "14" if calendar.primary else "9",
            "backgroundColor": calendar.color,
            "foregroundColor": "#000000",
            "selected": True,
            "accessRole": role(calendar),
            "defaultReminders": ([{"method": "popup", "minutes": 10}] if calendar.primary else []),
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        }
        if calendar.primary:
            entry["primary"] = True
            entry["notificationSettings"] = {
                "notifications": [{"type": "eventCreation", "method": "email"}]
            }
        return entry

    def calendar_list_list(self, call: Call) -> Response:
        params = call.params
        ranks = {
            "freeBusyReader": 0,
            "reader": 1,
            "writerWithoutPrivateAccess": 2,
            "writer": 2,
            "owner": 3,
        }
        minimum = ranks.get(params.get("minAccessRole", "freeBusyReader"), 0)
        calendars = sorted(
            call.account.calendars.values(), key=lambda c: (not c.primary, c.name.lower(), c.id)
        )
        calendars = [c for c in calendars if ranks[role(c)] >= minimum]
        kind = f"calendarList:{call.account.email}"
        if "syncToken" in params:
            # Calendars never change in the sandbox: an incremental list is empty.
            if self.sealer.unseal(kind, params["syncToken"]) is None:
                raise full_sync_required()
            calendars = []
        size = min(params.get("maxResults", CALENDAR_LIST_PAGE_SIZE[0]), CALENDAR_LIST_PAGE_SIZE[1])
        start = 0
        if "pageToken" in params:
            start = self.sealer.unseal(f"{kind}:page", params["pageToken"])
            if not isinstance(start, int):
                raise invalid_parameter("pageToken", "Invalid page token value.")
        page = calendars[start : start + size]
        body: dict[str, Any] = {
            "kind": "calendar#calendarList",
            "etag": etag(f"{call.account.email}:{len(calendars)}"),
            "items": [self._calendar_list_entry(c) for c in page],
        }
        if start + size < len(calendars):
            body["nextPageToken"] = self.sealer.seal(f"{kind}:page", start + size)
        else:
            body["nextSyncToken"] = self.sealer.seal(kind, self.store.seq)
        return Response.json(body)

    def calendar_list_get(self, call: Call) -> Response:
        return Response.json(self._calendar_list_entry(calendar_of(call)))

    def calendars_get(self, call: Call) -> Response:
        calendar = calendar_of(call)
        return Response.json(
            {
                "kind": "calendar#calendar",
                "etag": etag(f"{calendar.id}:{calendar.name}"),
                "id": calendar.id,
                "summary": calendar.name,
                "timeZone": calendar.time_zone,
                "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
            }
        )
