"""Push notifications (events.watch, channels.stop) delivered to a loopback web hook."""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from tests.sandbox.google.helpers import CAMILLE, timed_event


class Hook:
    """A web hook on a free loopback port that keeps what it receives."""

    def __init__(self) -> None:
        received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.put((dict(self.headers.items()), self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/calendars/google/hook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def next(self, timeout: float = 5) -> tuple[dict[str, str], bytes]:
        return self.received.get(timeout=timeout)

    def quiet_for(self, seconds: float) -> bool:
        try:
            self.received.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


@pytest.fixture
def hook() -> Iterator[Hook]:
    hook = Hook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def watch(service: Any, address: str, **fields: Any) -> dict[str, Any]:
    body = {"id": secrets.token_hex(12), "type": "web_hook", "address": address, **fields}
    return service.events().watch(calendarId="primary", body=body).execute()


def insert(service: Any, summary: str) -> dict[str, Any]:
    body = timed_event(summary, "2026-11-02T10:00:00", "2026-11-02T11:00:00")
    return service.events().insert(calendarId="primary", body=body).execute()


def test_watch_sends_sync_then_exists_after_a_change(sandbox, service, hook):
    expiration = int((time.time() + 3600) * 1000)
    channel = watch(service, hook.url, token="formations-42", expiration=str(expiration))
    assert channel["kind"] == "api#channel"
    assert channel["expiration"] == str(expiration)
    assert channel["resourceUri"].endswith("/calendar/v3/calendars/primary/events?alt=json")

    headers, body = hook.next()
    assert headers["X-Goog-Resource-State"] == "sync"
    assert headers["X-Goog-Message-Number"] == "1"
    insert(service, "Notifié")
    headers, body = hook.next()

    assert body == b""
    assert headers["X-Goog-Resource-State"] == "exists"
    assert headers["X-Goog-Channel-ID"] == channel["id"]
    assert headers["X-Goog-Channel-Token"] == "formations-42"
    assert headers["X-Goog-Resource-ID"] == channel["resourceId"]
    assert headers["X-Goog-Resource-URI"] == channel["resourceUri"]
    assert int(headers["X-Goog-Message-Number"]) > 1
    assert parsedate_to_datetime(headers["X-Goog-Channel-Expiration"]).timestamp() == (
        expiration // 1000
    )
    service.channels().stop(
        body={"id": channel["id"], "resourceId": channel["resourceId"]}
    ).execute()


def test_changes_in_another_calendar_do_not_notify(sandbox, service, hook):
    channel = watch(service, hook.url)
    hook.next()  # sync
    team = next(c for c in sandbox.store.account(CAMILLE).calendars.values() if not c.primary)
    service.events().insert(
        calendarId=team.id,
        body=timed_event("Ailleurs", "2026-11-03T10:00:00", "2026-11-03T11:00:00"),
    ).execute()

    assert hook.quiet_for(0.3)
    service.channels().stop(
        body={"id": channel["id"], "resourceId": channel["resourceId"]}
    ).execute()


def test_channels_stop_ends_the_notifications(sandbox, service, hook):
    channel = watch(service, hook.url)
    hook.next()  # sync
    service.channels().stop(
        body={"id": channel["id"], "resourceId": channel["resourceId"]}
    ).execute()
    insert(service, "Silence")

    assert hook.quiet_for(0.3)
    assert sandbox.count("google.channels.stop") == 1


def test_stopping_an_unknown_channel_is_404(service):
    with pytest.raises(HttpError) as caught:
        service.channels().stop(body={"id": "nope", "resourceId": "nope"}).execute()
    assert caught.value.status_code == 404


def test_expired_channels_are_dropped(sandbox, service, hook):
    watch(service, hook.url, expiration=str(int((time.time() + 0.3) * 1000)))
    hook.next()  # sync
    time.sleep(0.4)
    insert(service, "Trop tard")
    assert hook.quiet_for(0.3)


def test_a_channel_id_in_use_is_refused(service, hook):
    channel = watch(service, hook.url)
    with pytest.raises(HttpError) as caught:
        watch(service, hook.url, id=channel["id"])
    assert caught.value.status_code == 400
    service.channels().stop(
        body={"id": channel["id"], "resourceId": channel["resourceId"]}
    ).execute()


@pytest.mark.parametrize("address", ["http://hooks.example.test/google", "ftp://127.0.0.1/x"])
def test_watch_refuses_plain_http_outside_loopback(service, address):
    with pytest.raises(HttpError) as caught:
        watch(service, address)
    assert caught.value.status_code == 400


def test_watch_on_a_generated_calendar_is_refused_as_google_does(service, hook):
    body = {"id": secrets.token_hex(12), "type": "web_hook", "address": hook.url}
    holidays = "fr.french#holiday@group.v.calendar.google.test"

    with pytest.raises(HttpError) as caught:
        service.events().watch(calendarId=holidays, body=body).execute()

    assert caught.value.status_code == 400
    item = json.loads(caught.value.content)["error"]["errors"][0]
    assert item["reason"] == "pushNotSupportedForRequestedResource"


def test_a_change_never_waits_for_a_slow_web_hook(sandbox, service):
    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            time.sleep(1)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        channel = watch(service, f"http://127.0.0.1:{server.server_address[1]}/")
        started = time.perf_counter()
        insert(service, "Rapide")
        assert time.perf_counter() - started < 0.5
        service.channels().stop(
            body={"id": channel["id"], "resourceId": channel["resourceId"]}
        ).execute()
    finally:
        server.shutdown()
        server.server_close()
