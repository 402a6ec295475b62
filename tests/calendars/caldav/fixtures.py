"""A learner's CalDAV account on a real server (Radicale, then Xandikos), for the tests of
connecting, syncing and exporting through the pages, the API and the browser (a plugin of
tests/conftest.py: `dav` and `own_calendar`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from calendars.providers.caldav.connection import forget_sessions
from tests.calendars.providers.caldav import servers
from tests.calendars.providers.caldav.servers import DavServer

SERVERS = {"radicale": servers.radicale, "xandikos": servers.xandikos}


@pytest.fixture(scope="module", params=list(SERVERS))
def dav(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DavServer]:
    with SERVERS[request.param](tmp_path_factory.mktemp(request.param)) as server:
        yield server


@pytest.fixture
def own_calendar(dav: DavServer) -> Iterator[str]:
    """A fresh calendar of the account's, alone in its home with the read-only one and the
    task list (it is deleted after the test): the one a connection takes as primary."""
    url = dav.make_calendar(f"a-{uuid.uuid4().hex[:8]}")
    yield url
    forget_sessions()
    dav.proxy.faults.clear()
    dav.proxy.hide_sync_token = False
    dav.http("DELETE", url)
