"""What the import benchmark compares the import with, in the same run: the floor (the same
pages decoded from memory, normalised and inserted with one prepared statement per page), and
gcal_sync (https://github.com/allenporter/gcal_sync) syncing the same Google listing.

Django is set up (harness.bench) before any of these is called.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass
class RawListing:
    """A calendar's full listing as the provider sent it: each page's body, undecoded."""

    provider: str
    calendar_pk: int
    access_token: str
    pages: list[bytes]


def capture_listing(calendar: Any) -> RawListing:
    """The pages of `calendar`'s full listing, asked for exactly as the import asks (same
    parameters, page size, fields and headers), kept as bytes."""
    import requests
    from django.conf import settings

    from calendars.providers.google import api as google_api
    from calendars.providers.google import normalize as google_normalize
    from calendars.providers.outlook import api as outlook_api
    from calendars.providers.outlook.graph import http_client
    from calendars.services.credentials import integration_access_token
    from calendars.sync.importing import import_window

    token = integration_access_token(integration=calendar.integration)
    start, end = import_window()
    pages: list[bytes] = []
    if calendar.integration.provider == "google":
        url = f"{settings.GOOGLE_API_URL}calendar/v3/calendars/{quote(calendar.external_id)}/events"
        params = {
            "singleEvents": "true",
            "maxResults": google_api.EVENTS_PAGE_SIZE,
            "fields": google_normalize.LISTED_FIELDS,
            "timeMin": start.isoformat(),
            "timeMax": end.isoformat(),
        }
        while True:
            answer = requests.get(url, params=params, timeout=60,
                                  headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            answer.raise_for_status()
            pages.append(answer.content)
            following = json.loads(answer.content).get("nextPageToken")
            if not following:
                break
            params["pageToken"] = following
    else:
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        url = (
            f"{settings.OUTLOOK_GRAPH_URL}/me/calendars/{quote(calendar.external_id, safe='')}"
            f"/calendarView/delta?startDateTime={start.strftime(stamp)}"
            f"&endDateTime={end.strftime(stamp)}"
        )
        prefer = (
            f'odata.maxpagesize={outlook_api.EVENTS_PAGE_SIZE}, outlook.body-content-type="text"'
        )
        while url:
            answer = http_client().get(url, timeout=60, headers={
                "Authorization": f"Bearer {token}", "Prefer": prefer,
            })  # fmt: skip
            answer.raise_for_status()
            pages.append(answer.content)
            url = json.loads(answer.content).get("@odata.nextLink")
    return RawListing(calendar.integration.provider, calendar.pk, token, pages)


def floor_import(listing: RawListing) -> tuple[float, int]:
    """Seconds to decode the captured pages, normalise them with the providers' own
    functions, and insert the events with one prepared statement per page (`executemany`, a
    transaction each) into the events table; and the rows inserted. Graph's bare occurrences
    are completed from masters already read (after an import with the same token: no
    request)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from calendars.models import CalendarEvent
    from calendars.providers.google import normalize as google_normalize
    from calendars.providers.outlook import normalize as outlook_normalize
    from calendars.providers.outlook import series
    from calendars.providers.types import EventPage, RemoteEvent

    meta = CalendarEvent._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    ops = connection.ops
    quote_name = ops.quote_name
    sql = (
        f"INSERT INTO {quote_name(meta.db_table)} "  # noqa: S608
        f"({', '.join(quote_name(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )

    def adapter(field: Any) -> Any:
        from django.db import models

        if isinstance(field, models.DateTimeField):
            return ops.adapt_datetimefield_value
        if isinstance(field, models.DateField):
            return ops.adapt_datefield_value
        return None

    now = timezone.now()
    fixed = {"calendar": listing.calendar_pk, "generation": 1, "updated_at": now,
             "description": ""}  # fmt: skip
    plan = [(f.name, adapter(f), f.name in fixed) for f in fields]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the floor makes no request")

    read_masters, series.read_masters = series.read_masters, refuse
    inserted = 0
    started = time.perf_counter()
    try:
        for body in listing.pages:
            data = json.loads(body)
            if listing.provider == "google":
                page = EventPage.of(data.get("items") or [], google_normalize.remote_event,
                                    next_page=None, sync_token=None)  # fmt: skip
            else:
                entries, _masters, _gone, _orphans = series.hydrate(
                    listing.access_token, data.get("value") or []
                )
                page = EventPage.of(entries, outlook_normalize.remote_event,
                                    next_page=None, sync_token=None)  # fmt: skip
            rows = []
            for item in page.items:
                if not isinstance(item, RemoteEvent):
                    continue
                row = []
                for name, adapt, is_fixed in plan:
                    value = fixed[name] if is_fixed else getattr(item, name)
                    row.append(adapt(value) if adapt is not None else value)
                rows.append(row)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(sql, rows)
            inserted += len(rows)
    finally:
        series.read_masters = read_masters
    return time.perf_counter() - started, inserted


def gcal_sync_import(calendar: Any) -> tuple[float, int]:
    """Seconds gcal_sync takes to sync the same Google listing (the window, the instances of
    series, as our import asks) into its in-memory store, with its own page size and fields;
    and the items it holds then. It reaches the sandbox through its base URL (`host`)."""
    import aiohttp
    from django.conf import settings
    from gcal_sync.api import Boolean, GoogleCalendarService, SyncEventsRequest
    from gcal_sync.auth import AbstractAuth
    from gcal_sync.store import InMemoryCalendarStore
    from gcal_sync.sync import CalendarEventSyncManager

    from calendars.services.credentials import integration_access_token
    from calendars.sync.importing import import_window

    token = integration_access_token(integration=calendar.integration)
    start, end = import_window()

    class Auth(AbstractAuth):
        async def async_get_access_token(self) -> str:
            return token

    class Instances(SyncEventsRequest):
        """gcal_sync's sync request, with the series expanded as our listing has them."""

        def to_request(self) -> Any:
            raw = super().to_request()
            raw.single_events = Boolean.TRUE
            return raw

    async def run() -> tuple[float, int]:
        async with aiohttp.ClientSession() as session:
            auth = Auth(session, host=f"{settings.GOOGLE_API_URL}calendar/v3")
            store = InMemoryCalendarStore()
            request = Instances(calendar_id=calendar.external_id, start_time=start, end_time=end)
            manager = CalendarEventSyncManager(
                GoogleCalendarService(auth), store=store, request_template=request
            )
            started = time.perf_counter()
            await manager.run()
            seconds = time.perf_counter() - started
            data = await store.async_load() or {}
            return seconds, _count_items(data)

    return asyncio.run(run())


def _count_items(data: Any) -> int:
    """The events gcal_sync's store holds (under its scopes' keys)."""
    if isinstance(data, dict):
        if isinstance(data.get("items"), dict):
            return len(data["items"])
        return sum(_count_items(value) for value in data.values())
    return 0
