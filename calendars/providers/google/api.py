"""Google Calendar v3 through google-api-python-client: calendars, events, writes.

https://developers.google.com/calendar/api/v3/reference
"""

from __future__ import annotations

import base64
import hashlib
import threading
from datetime import datetime
from typing import Any

import google_auth_httplib2
import httplib2
from django.conf import settings
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

from calendars.errors import ProviderError, Unauthorized
from calendars.providers.base import CalendarClient, state_refused
from calendars.providers.google import batch, normalize
from calendars.providers.google.errors import execute
from calendars.providers.types import (
    CalendarInfo,
    EventPage,
    ExportedFormation,
    Write,
    WriteOutcome,
)

EVENTS_PAGE_SIZE = 2500  # Google's maximum


class GoogleCalendars(CalendarClient):
    def list_calendars(self, access_token: str) -> list[CalendarInfo]:
        """https://developers.google.com/calendar/api/v3/reference/calendarList/list"""
        service = calendar_service(access_token)
        calendars, page_token = [], None
        while True:
            page = execute(service.calendarList().list(pageToken=page_token, maxResults=250))
            calendars += [
                CalendarInfo(
                    external_id=item["id"],
                    name=item.get("summaryOverride") or item.get("summary", ""),
                    primary=bool(item.get("primary")),
                    can_edit=item.get("accessRole") in ("owner", "writer"),
                    color=item.get("backgroundColor", ""),
                    time_zone=item.get("timeZone", ""),
                )
                for item in page.get("items", [])
            ]
            page_token = page.get("nextPageToken")
            if not page_token:
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
        """https://developers.google.com/calendar/api/v3/reference/events/list and
        https://developers.google.com/calendar/api/guides/sync; a partial response (`fields`)
        with what the import reads, on every page of full and incremental listings alike."""
        params: dict[str, Any] = {
            "calendarId": calendar_id,
            "singleEvents": True,
            "maxResults": EVENTS_PAGE_SIZE,
            "fields": normalize.LISTED_FIELDS,
        }
        if sync_token:  # the other parameters must be those of the full listing
            params["syncToken"] = sync_token
        else:
            params["timeMin"] = window[0].isoformat()
            params["timeMax"] = window[1].isoformat()
        if page:
            params["pageToken"] = page
        try:
            data = execute(calendar_service(access_token).events().list(**params))
        except ProviderError as error:
            raise state_refused(error, sync_token or page) from None
        return EventPage.of(
            data.get("items") or [],
            normalize.remote_event,
            next_page=data.get("nextPageToken"),
            sync_token=data.get("nextSyncToken"),
        )

    def export_event_id(self, *, owner: str, calendar_id: str, uid: str, copy: int) -> str:
        """Google lets the client choose the id (base32hex, 5 to 1024 characters): the same
        formation in the same calendar always gets the same one, so a create sent twice is
        refused (409) instead of duplicated.
        https://developers.google.com/calendar/api/v3/reference/events/insert"""
        digest = hashlib.sha256(f"{owner}|{calendar_id}|{uid}|{copy}".encode()).digest()
        return "fm" + base64.b32hexencode(digest).decode().rstrip("=").lower()

    def event_body(self, formation: ExportedFormation) -> dict[str, Any]:
        """https://developers.google.com/calendar/api/v3/reference/events#resource"""
        return normalize.event_body(formation)

    def write_events(
        self, access_token: str, writes: list[Write]
    ) -> tuple[list[WriteOutcome], int]:
        """Batches of at most 50 calls, one after the other.
        https://developers.google.com/calendar/api/guides/batch"""
        return batch.write_events(calendar_service(access_token), writes)


class _AccessToken(Credentials):
    """An access token owned by services.credentials.integration_access_token.

    On a 401 the client library would refresh the credentials itself; the refresh must instead
    happen under the integration's row lock (Outlook-style rotation, saved tokens), so this
    reports Unauthorized and integration_call refreshes and tries again.
    """

    def refresh(self, request: Any) -> None:
        raise Unauthorized("Google refused the access token.")


def calendar_service(access_token: str) -> Any:
    """The Calendar v3 client on GOOGLE_API_URL, from the discovery document shipped with
    google-api-python-client (no network), with our timeout, authorised with `access_token`.

    One per thread, kept: building the client and each of its resources (the library writes
    the docstring of every method of a resource each time one is asked for) costs about
    20 ms of CPU, and its connection is kept for the next call. A thread makes one call at a
    time, so the token is set for the call under way."""
    key = (settings.GOOGLE_API_URL, settings.CALENDAR_HTTP_TIMEOUT)
    client = getattr(_local, "client", None)
    if client is None or client.key != key:
        client = _local.client = _Client(key)
    client.credentials.token = access_token
    return client


_local = threading.local()


class _Client:
    """A thread's Calendar v3 client: the library's service, its resources built once."""

    def __init__(self, key: tuple[str, float]) -> None:
        api_url, timeout = key
        self.key = key
        self.credentials = _AccessToken(token=None)
        http = google_auth_httplib2.AuthorizedHttp(
            self.credentials, http=httplib2.Http(timeout=timeout)
        )
        self._service = build(
            "calendar",
            "v3",
            http=http,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": f"{api_url}calendar/v3/"},
        )
        self._resources: dict[str, Any] = {}

    def _resource(self, name: str) -> Any:
        if name not in self._resources:
            self._resources[name] = getattr(self._service, name)()
        return self._resources[name]

    def events(self) -> Any:
        return self._resource("events")

    def calendarList(self) -> Any:  # the library's name
        return self._resource("calendarList")

    def channels(self) -> Any:
        return self._resource("channels")
