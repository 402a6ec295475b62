"""The provider's own tests: `dav` (Radicale, then Xandikos, once per module: the plugin
tests/calendars/caldav/fixtures.py), the account's grant and token, and a calendar of its own
for each test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from calendars.providers.caldav.auth import check
from calendars.providers.caldav.connection import forget_sessions
from calendars.providers.types import Grant
from tests.calendars.providers.caldav.servers import DavServer


@pytest.fixture(autouse=True)
def _clean_proxy(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    forget_sessions()
    if "dav" in request.fixturenames:
        server = request.getfixturevalue("dav")
        server.proxy.faults.clear()
        server.proxy.hide_sync_token = False


@pytest.fixture
def grant(dav: DavServer) -> Grant:
    return check(dav.url, dav.username, dav.password)


@pytest.fixture
def token(grant: Grant) -> str:
    return grant.access_token


@pytest.fixture
def calendar(dav: DavServer) -> str:
    return dav.make_calendar(f"agenda-{uuid.uuid4().hex[:8]}")
