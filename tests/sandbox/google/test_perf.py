"""How fast the sandbox serves a large calendar: 10,000 events in four pages."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sandbox.core import Options, Sandbox
from tests.sandbox.google.helpers import CAMILLE, calendar_service, google_credentials


@pytest.fixture
def large_sandbox(tmp_path) -> Iterator[Sandbox]:
    sandbox = Sandbox(Options(seed=3, events=10_000, state_dir=tmp_path)).start("127.0.0.1")
    yield sandbox
    sandbox.stop()


def test_ten_thousand_events_come_in_four_pages_of_2500(large_sandbox):
    service = calendar_service(large_sandbox, google_credentials(large_sandbox, CAMILLE))
    items, pages = [], 0
    request = service.events().list(calendarId="primary", maxResults=2500, singleEvents=True)
    started = time.perf_counter()
    while request is not None:
        page = request.execute()
        pages += 1
        items += page["items"]
        request = service.events().list_next(request, page)
    elapsed = time.perf_counter() - started

    print(f"\n10,000 events in {pages} pages of 2500: {elapsed * 1000:.0f} ms")
    assert pages == 4
    assert len(items) == len({item["id"] for item in items}) == 10_000
    assert all(item["status"] != "cancelled" for item in items)
    assert "nextSyncToken" in page
