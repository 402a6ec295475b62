"""Listings ask only for what the import reads: Google's partial responses (`fields`), and
none of Graph's `$select` on a delta, which Graph does not take there."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest

from calendars.providers.google import normalize as google
from calendars.providers.outlook import graph
from calendars.sync.importing import calendar_import
from sandbox.google import api as sandbox_google_api
from sandbox.google.discovery import FieldSelector
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("wide_window", "no_waiting")

# A Google event with everything `remote_event` reads, and more it does not.
RICH_EVENT = {
    "kind": "calendar#event",
    "id": "evt123",
    "etag": '"3391"',
    "status": "confirmed",
    "eventType": "default",
    "htmlLink": "https://www.google.com/calendar/event?eid=ZXZ0",
    "summary": "Comité",
    "description": "Ordre du jour, code d'accès",
    "location": "Salle 4",
    "creator": {"email": "chef@example.com"},
    "organizer": {"email": "chef@example.com", "self": False},
    "start": {"dateTime": "2026-03-02T09:00:00+01:00", "timeZone": "Europe/Paris"},
    "end": {"dateTime": "2026-03-02T10:30:00+01:00", "timeZone": "Europe/Paris"},
    "recurringEventId": "series9",
    "originalStartTime": {"dateTime": "2026-03-02T09:00:00+01:00"},
    "transparency": "transparent",
    "iCalUID": "series9@google.com",
    "sequence": 2,
    "attendees": [
        {"email": "chef@example.com", "organizer": True, "responseStatus": "accepted"},
        {"email": "lea@example.com", "self": True, "responseStatus": "tentative"},
    ],
    "hangoutLink": "",
    "conferenceData": {
        "entryPoints": [
            {"entryPointType": "phone", "uri": "tel:+33-1-23"},
            {"entryPointType": "video", "uri": "https://meet.example.com/abc"},
        ],
        "conferenceSolution": {"name": "Meet"},
    },
    "extendedProperties": {"private": {"formationId": "f-1"}, "shared": {"x": "y"}},
    "reminders": {"useDefault": True},
}


def _partial(item):
    """The item as Google answers a listing with our `fields`."""
    return FieldSelector(google.LISTED_FIELDS).apply({"items": [item]})["items"][0]


@pytest.mark.parametrize(
    "item",
    [
        RICH_EVENT,
        {**RICH_EVENT, "organizer": {"self": True}, "hangoutLink": "https://meet.google.com/x"},
        {**RICH_EVENT, "start": {"date": "2026-03-02"}, "end": {"date": "2026-03-04"}},
        {**RICH_EVENT, "status": "cancelled"},
        {**RICH_EVENT, "eventType": "workingLocation"},
    ],
    ids=["invitation", "own-meet", "all-day", "cancelled", "skipped-type"],
)
def test_google_fields_keep_everything_the_import_reads(item):
    full, partial = google.remote_event(item), google.remote_event(_partial(item))

    if dataclasses.is_dataclass(full) and hasattr(full, "description"):
        full = dataclasses.replace(full, description="")  # never asked for, never kept
    assert partial == full
    assert "description" not in _partial(item)


def test_google_listings_ask_for_the_fields_full_and_incremental(
    sandbox_settings, learner, monkeypatch
):
    asked = []

    class Recording(FieldSelector):
        def __init__(self, spec):
            asked.append(spec)
            super().__init__(spec)

    monkeypatch.setattr(sandbox_google_api, "FieldSelector", Recording)
    integration = connect(sandbox_settings, learner, "google")
    calendar = integration.calendars.get(is_primary=True)
    asked.clear()  # the calendar list of the connection

    calendar_import(calendar=calendar)  # full
    pages = len(asked)
    calendar.refresh_from_db()
    calendar_import(calendar=calendar)  # incremental, from the sync token

    assert pages >= 1 and len(asked) == pages + 1
    assert set(asked) == {google.LISTED_FIELDS}
    calendar.refresh_from_db()
    assert calendar.sync_token  # nextSyncToken is among the fields


def test_graph_delta_is_asked_without_select(sandbox_settings, learner, monkeypatch):
    """Graph's event delta takes no `$select` (https://learn.microsoft.com/graph/api/event-delta,
    "OData query parameters"): the sandbox refuses it with 400, as the docs have it."""
    urls = []
    real = graph.graph_request

    def recording(access_token, method, url, **kwargs):
        urls.append(url)
        return real(access_token, method, url, **kwargs)

    monkeypatch.setattr(graph, "graph_request", recording)
    integration = connect(sandbox_settings, learner, "outlook")
    calendar = integration.calendars.get(is_primary=True)

    assert calendar_import(calendar=calendar).created > 0

    deltas = [u for u in urls if "/calendarView/delta" in u]
    assert deltas
    assert not any("$select" in parse_qs(urlsplit(u).query) for u in deltas)
