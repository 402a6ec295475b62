"""CalDAV calendars and their events: the account's calendars, listings, writes.

https://www.rfc-editor.org/rfc/rfc4791
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

from calendars.providers.base import CalendarClient
from calendars.providers.caldav import listing, normalize, writes
from calendars.providers.caldav.auth import discover
from calendars.providers.caldav.connection import (
    APPLE,
    CALDAV,
    DAV,
    multistatus,
    prop_text,
    session,
)
from calendars.providers.types import (
    CalendarInfo,
    EventPage,
    ExportedFormation,
    Write,
    WriteOutcome,
)

# Resources read per calendar-multiget: each can be a whole series with its exceptions.
EVENTS_PAGE_SIZE = 200
# Privileges that let the account write events (RFC 3744 section 3; RFC 4791 section 6.3).
WRITE_PRIVILEGES = {f"{{{DAV}}}{name}" for name in ("all", "write", "write-content", "bind")}
CALENDAR_PROPS = (
    (DAV, "resourcetype"),
    (DAV, "displayname"),
    (DAV, "current-user-privilege-set"),
    (CALDAV, "supported-calendar-component-set"),
    (APPLE, "calendar-color"),
)


class CalDAVCalendars(CalendarClient):
    def list_calendars(self, access_token: str) -> list[CalendarInfo]:
        """The calendar collections of the account's calendar-home-set (RFC 4791 section
        6.2.1) that take events; read-only where the account has no write privilege
        (current-user-privilege-set, RFC 3744 section 5.4)."""
        dav = session(access_token)
        home = dav.account.home or discover(dav)
        entries, _ = multistatus(dav.propfind(home, *CALENDAR_PROPS, depth=1))
        calendars = []
        for entry in entries:
            kind = entry.props.get(f"{{{DAV}}}resourcetype")
            if kind is None or kind.find(f"{{{CALDAV}}}calendar") is None:
                continue
            components = entry.props.get(f"{{{CALDAV}}}supported-calendar-component-set")
            if components is not None and "VEVENT" not in {
                str(comp.get("name", "")).upper() for comp in components
            }:
                continue  # a task list or journal
            privileges = entry.props.get(f"{{{DAV}}}current-user-privilege-set")
            can_edit = privileges is None or any(
                child.tag in WRITE_PRIVILEGES for privilege in privileges for child in privilege
            )
            url = dav.absolute(entry.href, home)
            name = prop_text(entry.props, DAV, "displayname") or url.rstrip("/").rsplit("/")[-1]
            calendars.append(
                CalendarInfo(
                    external_id=url,
                    name=name,
                    primary=False,
                    can_edit=can_edit,
                    color=prop_text(entry.props, APPLE, "calendar-color")[:7],
                )
            )
        calendars.sort(key=lambda c: (not c.can_edit, c.external_id))
        if calendars and calendars[0].can_edit:
            # CalDAV names no primary calendar to a client that does not schedule: the first
            # writable one (by address: the oldest, on most servers) stands for it.
            first = calendars[0]
            calendars[0] = CalendarInfo(
                first.external_id, first.name, True, True, first.color, first.time_zone
            )
        return calendars

    def list_events(
        self,
        access_token: str,
        calendar_id: str,
        *,
        window: tuple[datetime, datetime],
        sync_token: str = "",
        page: str = "",
    ) -> EventPage:
        """A full listing over `window` in pages of EVENTS_PAGE_SIZE resources (calendar-query
        then calendar-multiget), or an incremental one (sync-collection, RFC 6578, else ETags
        under getctag). https://www.rfc-editor.org/rfc/rfc4791#section-7.8"""
        dav = session(access_token)
        if sync_token:
            return listing.incremental_page(
                dav, calendar_id, window, sync_token, page, EVENTS_PAGE_SIZE
            )
        return listing.full_page(dav, calendar_id, window, page, EVENTS_PAGE_SIZE)

    def export_event_id(self, *, owner: str, calendar_id: str, uid: str, copy: int) -> str:
        """CalDAV lets the client name the resource (RFC 4791 section 5.3.2): the same
        formation in the same calendar always gets the same name, so a create sent twice is
        refused (If-None-Match, 412) instead of duplicated."""
        digest = hashlib.sha256(f"{owner}|{calendar_id}|{uid}|{copy}".encode()).digest()
        return "fm" + base64.b32hexencode(digest).decode().rstrip("=").lower() + ".ics"

    def event_body(self, formation: ExportedFormation) -> dict[str, Any]:
        """The iCalendar resource, in {"ical": text, "uid": UID}."""
        return normalize.event_body(formation)

    def write_events(
        self, access_token: str, writes_: list[Write]
    ) -> tuple[list[WriteOutcome], int]:
        """One request per write (CalDAV has no batch), conditional on ETags (RFC 4791
        section 5.3.4)."""
        dav = session(access_token)
        outcomes = writes.write_events(dav, writes_)
        return outcomes, dav.sent
