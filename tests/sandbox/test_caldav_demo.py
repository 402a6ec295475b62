"""The demo's CalDAV server (`make run`): Radicale, prepared on disk with the demo account, whose
calendar the CalDAV provider reads like any other, recurring and all-day events among them."""

from __future__ import annotations

import subprocess
import time
from datetime import date, timedelta

import pytest
import requests
from django.utils import timezone

from calendars.providers import get_provider
from calendars.providers.types import RemoteEvent
from sandbox import caldav_demo
from tests.calendars.providers.caldav.servers import free_port


@pytest.fixture
def demo_server(tmp_path):
    port = free_port()
    command = caldav_demo.prepare(tmp_path / "caldav", date.today(), port=port)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.request("OPTIONS", url, timeout=1)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_the_demo_account_has_recurring_all_day_and_single_events(demo_server):
    provider = get_provider("caldav")
    grant = provider.oauth.sign_in(
        url=demo_server, username=caldav_demo.DEMO_USERNAME, password=caldav_demo.DEMO_PASSWORD
    )
    (calendar,) = provider.calendars.list_calendars(grant.access_token)
    assert (calendar.name, calendar.primary, calendar.can_edit) == ("Personnel", True, True)

    now = timezone.now()
    page = provider.calendars.list_events(
        grant.access_token, calendar.external_id,
        window=(now - timedelta(days=30), now + timedelta(days=90)),
    )  # fmt: skip
    events = [item for item in page.items if isinstance(item, RemoteEvent)]
    titles = [event.title for event in events]
    assert titles.count("Cours de yoga") == 10  # 12 weekly, one cancelled, one moved
    assert "Cours de yoga (décalé)" in titles
    assert "Rendez-vous chez le dentiste" in titles
    assert any(e.title == "Congés" and e.all_day for e in events)
    assert titles.count("Point d'équipe") == 20
