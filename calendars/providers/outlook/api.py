"""Outlook calendars and their events through Microsoft Graph.

https://learn.microsoft.com/graph/api/resources/calendar
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings

from calendars.errors import ProviderError
from calendars.providers.base import CalendarClient, state_refused
from calendars.providers.outlook import batch, normalize, series
from calendars.providers.outlook.graph import graph_get, graph_request
from calendars.providers.types import (
    CalendarInfo,
    EventPage,
    ExportedFormation,
    RemoteEvent,
    Removed,
    SeriesChanged,
    Write,
    WriteOutcome,
)

EVENTS_PAGE_SIZE = 1000


class OutlookCalendars(CalendarClient):
    def list_calendars(self, access_token: str) -> list[CalendarInfo]:
        """https://learn.microsoft.com/graph/api/user-list-calendars"""
        calendars = []
        url: str | None = (
            f"{settings.OUTLOOK_GRAPH_URL}/me/calendars?$top=100"
            "&$select=id,name,isDefaultCalendar,canEdit,hexColor"
        )
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
        try:
            data = graph_get(access_token, url, headers={"Prefer": prefer})
        except ProviderError as error:
            raise state_refused(error, page or sync_token) from None
        entries, masters, gone, orphans = series.hydrate(access_token, data.get("value") or [])
        page = EventPage.of(
            entries,
            normalize.remote_event,
            next_page=data.get("@odata.nextLink"),
            sync_token=data.get("@odata.deltaLink"),
        )
        page.items += [SeriesChanged(master["id"]) for master in masters] + gone
        page.skipped += orphans
        return page

    def list_series(
        self,
        access_token: str,
        calendar_id: str,
        series_id: str,
        *,
        window: tuple[datetime, datetime],
    ) -> list[RemoteEvent | Removed] | None:
        """The series' occurrences in the window, whole; [] when the series is gone. Graph's
        delta gives no removal for a deleted occurrence or for the old dates of a rescheduled
        series (microsoft-graph-docs PR #4501).
        https://learn.microsoft.com/graph/api/event-list-instances"""
        start, end = (moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for moment in window)
        url: str | None = (
            f"{settings.OUTLOOK_GRAPH_URL}/me/calendars/{quote(calendar_id, safe='')}/events/"
            f"{quote(series_id, safe='')}/instances?startDateTime={start}&endDateTime={end}"
            f"&$top={EVENTS_PAGE_SIZE}&$select={normalize.EVENT_FIELDS}"
        )
        items: list[RemoteEvent | Removed] = []
        while url:
            data = graph_request(access_token, "GET", url, absent_ok=True)
            if data is None:  # the series is gone
                return []
            for entry in data.get("value") or []:
                item = normalize.remote_event(entry)
                if item is not None:
                    items.append(item)
            url = data.get("@odata.nextLink")
        return items

    def export_event_id(self, *, owner: str, calendar_id: str, uid: str, copy: int) -> str:
        return ""  # Graph chooses; a retried create is recognised by its transactionId

    def event_body(self, formation: ExportedFormation) -> dict[str, Any]:
        """https://learn.microsoft.com/graph/api/resources/event: local times with Outlook's
        (Windows) name of the formation's zone, and our single-value extended property."""
        return normalize.event_body(formation)

    def write_events(
        self, access_token: str, writes: list[Write]
    ) -> tuple[list[WriteOutcome], int]:
        """JSON batches of at most 20 requests, one at a time: Graph runs up to 4 requests of a
        batch at once, Outlook's limit per mailbox. https://learn.microsoft.com/graph/json-batching"""
        return batch.write_events(access_token, writes)
