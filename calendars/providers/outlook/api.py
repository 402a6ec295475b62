"""Outlook calendars and their events through Microsoft Graph.

https://learn.microsoft.com/graph/api/resources/calendar
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings

from calendars.providers.base import CalendarClient
from calendars.providers.outlook import batch, normalize, series
from calendars.providers.outlook.graph import graph_get
from calendars.providers.types import (
    CalendarInfo,
    EventPage,
    ExportedFormation,
    Write,
    WriteOutcome,
)

EVENTS_PAGE_SIZE = 1000


class OutlookCalendars(CalendarClient):
    def list_calendars(self, access_token: str) -> list[CalendarInfo]:
        """https://learn.microsoft.com/graph/api/user-list-calendars"""
        calendars = []
        url: str | None = f"{settings.OUTLOOK_GRAPH_URL}/me/calendars?$top=100"
        while url:
            page = graph_get(access_token, url)
            calendars += [
                CalendarInfo(
                    external_id=item["id"],
                    name=item.get("name", ""),
                    primary=bool(item.get("isDefaultCalendar")),
                    can_edit=bool(item.get("canEdit")),
                    color=item.get("hexColor") or "",
                )
                for item in page.get("value", [])
            ]
            url = page.get("@odata.nextLink")
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
        """https://learn.microsoft.com/graph/delta-query-events: the first request carries the
        window, then nextLink pages, and the last page's deltaLink starts the next round."""
        url = page or sync_token
        if not url:
            start, end = (
                moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for moment in window
            )
            url = (
                f"{settings.OUTLOOK_GRAPH_URL}/me/calendars/{quote(calendar_id, safe='')}"
                f"/calendarView/delta?startDateTime={start}&endDateTime={end}"
            )
        # Text bodies: Graph converts them itself, far cheaper than stripping HTML here.
        prefer = f'odata.maxpagesize={EVENTS_PAGE_SIZE}, outlook.body-content-type="text"'
        data = graph_get(access_token, url, headers={"Prefer": prefer})
        entries, masters, gone = series.hydrate(access_token, data.get("value") or [])
        page = EventPage.of(
            entries,
            normalize.remote_event,
            next_page=data.get("@odata.nextLink"),
            sync_token=data.get("@odata.deltaLink"),
        )
        updates = [normalize.series_update(master) for master in masters]
        page.items += [update for update in updates if update is not None] + gone
        page.skipped += updates.count(None)
        return page

    def export_event_id(self, *, owner: str, calendar_id: str, uid: str, copy: int) -> str:
        return ""  # Graph chooses; a retried create is recognised by its transactionId

    def event_body(self, formation: ExportedFormation) -> dict[str, Any]:
        """https://learn.microsoft.com/graph/api/resources/event: local times with Outlook's
        (Windows) name of the formation's zone, and our single-value extended property."""
        return normalize.event_body(formation)

    def write_events(
        self, access_token: str, writes: list[Write]
    ) -> tuple[list[WriteOutcome], int]:
        """JSON batches of at most 20 requests, at most 4 sent at once: Outlook runs no more
        than 4 requests per mailbox at a time. https://learn.microsoft.com/graph/json-batching"""
        return batch.write_events(access_token, writes)
