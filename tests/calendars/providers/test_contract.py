"""The provider contract: what the sync engine asks of every calendar provider, one test per
capability, through the provider's real client libraries against the sandbox over loopback.

Parametrised over the registry (calendars.providers.names.PROVIDERS): a new provider is picked
up as soon as it has its line there, and is done when it passes. A provider the sandbox does not
emulate runs these tests against real servers, from a module of its own (ON_REAL_SERVERS).
Beyond the interface in calendars/providers/base.py, a provider reads its listing page size
from EVENTS_PAGE_SIZE in its calendar client's module, so that a listing can be asked for in
small pages here; and the sandbox emulates it (tests/calendars/connect_helpers.py connects an
account there), or its module plays the sandbox's part.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone

from calendars.errors import ProviderError, SyncTokenExpired
from calendars.providers import get_provider
from calendars.providers.base import Provider
from calendars.providers.names import PROVIDERS
from calendars.providers.types import (
    EventPage,
    ExportedFormation,
    Outcome,
    RemoteEvent,
    Removed,
    Write,
    WriteKind,
    WriteOutcome,
)
from calendars.services.credentials import integration_access_token
from tests.calendars.calendar_helpers import wait_for
from tests.calendars.connect_helpers import connect


@dataclasses.dataclass
class Connected:
    """A learner's account at one provider, connected through the real flow: the provider, an
    access token, and the account's primary calendar, at the provider and in the sandbox."""

    provider: Provider
    token: str
    owner: str  # who the chosen event ids are derived for, as exports name them
    account: Any  # the sandbox's account
    calendar_id: str

    @property
    def remote(self) -> Any:
        """The sandbox's copy of the calendar."""
        return self.account.calendars[self.calendar_id]

    def write(self, writes: list[Write]) -> tuple[list[WriteOutcome], int]:
        return self.provider.calendars.write_events(self.token, writes)

    def create(self, key: int, formation: ExportedFormation) -> Write:
        """The create an export sends for `formation` (its first copy)."""
        event_id = self.provider.calendars.export_event_id(
            owner=self.owner, calendar_id=self.calendar_id, uid=formation.uid, copy=0
        )
        return Write(
            key=key,
            kind=WriteKind.CREATE,
            calendar_id=self.calendar_id,
            event_id=event_id,
            body=self.provider.calendars.event_body(formation),
            uid=formation.uid,
        )

    def update(self, key: int, event_id: str, formation: ExportedFormation) -> Write:
        return Write(
            key=key,
            kind=WriteKind.UPDATE,
            calendar_id=self.calendar_id,
            event_id=event_id,
            body=self.provider.calendars.event_body(formation),
            uid=formation.uid,
        )

    def delete(self, key: int, event_id: str) -> Write:
        return Write(
            key=key, kind=WriteKind.DELETE, calendar_id=self.calendar_id, event_id=event_id
        )

    def find(self, key: int, uid: str) -> Write:
        """The look-up of a formation's event by its marker (where ids are not chosen)."""
        return Write(key=key, kind=WriteKind.FIND, calendar_id=self.calendar_id, uid=uid)

    def live_event(self, event_id: str) -> Any:
        """The sandbox's event, unless it was deleted."""
        event = self.remote.events.get(event_id)
        return None if event is None or event.deleted else event

    def carrying(self, uid: str) -> list[str]:
        """The ids of the live events in the calendar marked with the formation `uid`."""
        return [
            e.id
            for e in self.remote.events.values()
            if not e.deleted and uid in e.private_properties.values()
        ]


# Where each provider's contract runs: the sandbox emulates Google and Microsoft; CalDAV runs
# it against real servers (Radicale and Xandikos), whose module takes these tests as they are.
ON_REAL_SERVERS = {"caldav": "tests/calendars/providers/caldav/test_contract_caldav.py"}
ON_THE_SANDBOX = [name for name in PROVIDERS if name not in ON_REAL_SERVERS]


def test_every_registered_provider_runs_the_contract_somewhere():
    assert set(ON_THE_SANDBOX) | set(ON_REAL_SERVERS) == set(PROVIDERS)
    root = Path(__file__).resolve().parents[3]
    for module in ON_REAL_SERVERS.values():
        assert "from tests.calendars.providers.test_contract import" in (root / module).read_text()


@pytest.fixture(params=ON_THE_SANDBOX)
def connected(request: pytest.FixtureRequest, sandbox_settings: Any, learner: Any) -> Connected:
    integration = connect(sandbox_settings, learner, request.param)
    account = sandbox_settings.store.account(integration.account_email)
    return Connected(
        provider=get_provider(request.param),
        token=integration_access_token(integration=integration),
        owner=f"{learner.pk}:{request.param}",
        account=account,
        calendar_id=integration.calendars.get(is_primary=True).external_id,
    )


@pytest.fixture
def formation(sandbox: Any) -> Iterator[Callable[..., ExportedFormation]]:
    """Formations as providers are given them; their events leave the sandbox afterwards (it
    lives for the whole session: other tests count the events it lists)."""
    uids: list[str] = []

    def make(title: str = "Formation du contrat", days: int = 3) -> ExportedFormation:
        uid = str(uuid.uuid4())
        uids.append(uid)
        start = (timezone.now() + timedelta(days=days)).replace(second=0, microsecond=0)
        url = f"https://formations.example.com/formations/{len(uids)}/"
        return ExportedFormation(
            uid=uid,
            title=title,
            description=f"Page : {url}",
            location="Paris, salle 3",
            url=url,
            start=start,
            end=start + timedelta(hours=2),
            time_zone="Europe/Paris",
        )

    yield make
    with sandbox.store.lock:
        for account in list(sandbox.store.accounts.values()):
            for calendar in account.calendars.values():
                for event in list(calendar.events.values()):
                    marks = [*event.private_properties.values(), event.transaction_id]
                    if any(uid in mark for uid in uids for mark in marks):
                        del calendar.events[event.id]


def _window() -> tuple[datetime, datetime]:
    """Three months around today, from noon to noon (UTC): no all-day event begins or ends
    near a bound, in whatever zone its dates are read."""
    noon = timezone.now().astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return noon - timedelta(days=30), noon + timedelta(days=60)


def _in_window(connected: Connected, window: tuple[datetime, datetime]) -> set[str]:
    """The ids of the events the sandbox holds in the window: live occurrences and single
    events (not series masters), not cancelled."""
    return {
        e.id
        for e in connected.remote.events.values()
        if not e.deleted
        and not e.is_master
        and e.status != "cancelled"
        and e.start_utc() < window[1]
        and e.end_utc() > window[0]
    }


def _small_pages(connected: Connected, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    module = sys.modules[type(connected.provider.calendars).__module__]
    monkeypatch.setattr(module, "EVENTS_PAGE_SIZE", size)


def _listing(connected: Connected, window: tuple[datetime, datetime], sync_token: str = ""):
    """Every page of a full listing (or of an incremental one, from `sync_token`)."""
    pages: list[EventPage] = []
    while True:
        next_page = pages[-1].next_page if pages else ""
        pages.append(
            connected.provider.calendars.list_events(
                connected.token,
                connected.calendar_id,
                window=window,
                sync_token=sync_token,
                page=next_page,
            )
        )
        if not pages[-1].next_page:
            return pages
        assert len(pages) < 100, "the listing does not end"


def _listed(pages: list[EventPage]) -> list[RemoteEvent]:
    return [item for page in pages for item in page.items if isinstance(item, RemoteEvent)]


@pytest.fixture
def restore(sandbox: Any) -> Iterator[Callable[[Connected, Any], None]]:
    """Remembers sandbox events as they are; puts them back after the test."""
    kept: list[tuple[Connected, Any]] = []
    yield lambda connected, event: kept.append((connected, copy.deepcopy(event)))
    for connected, event in reversed(kept):
        sandbox.store.save(connected.account, connected.remote, event)


# --- listing ----------------------------------------------------------------------------------


def test_a_full_listing_gives_every_event_of_the_window_page_after_page(connected, monkeypatch):
    _small_pages(connected, monkeypatch, 5)
    window = _window()

    pages = _listing(connected, window)

    assert len(pages) > 1
    assert [bool(p.next_page) for p in pages] == [True] * (len(pages) - 1) + [False]
    assert [bool(p.sync_token) for p in pages] == [False] * (len(pages) - 1) + [True]
    listed = _listed(pages)
    ids = [i.external_id for i in listed]
    assert len(ids) == len(set(ids))  # no event twice
    expected = _in_window(connected, window)
    assert set(ids) <= expected
    # What is not listed was counted as an entry the provider's answer could not be read.
    assert len(expected - set(ids)) == sum(p.skipped for p in pages)
    for item in listed:
        event = connected.remote.events[item.external_id]
        assert item.title == event.title
        if not item.all_day:
            assert (item.start, item.end) == (event.start_utc(), event.end_utc())


def test_an_incremental_listing_gives_the_events_changed_or_deleted_since(
    connected, sandbox_settings, restore
):
    window = _window()
    full = _listing(connected, window)
    sync_token = full[-1].sync_token
    changed, gone = [
        connected.remote.events[item.external_id]
        for item in sorted(_listed(full), key=lambda item: item.external_id)
        if not item.all_day and not item.series_id
    ][:2]
    restore(connected, changed)
    restore(connected, gone)
    sandbox_settings.store.save(
        connected.account,
        connected.remote,
        dataclasses.replace(changed, title="Changé par la personne"),
    )
    sandbox_settings.store.delete(connected.account, connected.remote, gone)

    pages = _listing(connected, window, sync_token=sync_token)

    items = [i for p in pages for i in p.items]
    assert {i.external_id: type(i) for i in items} == {changed.id: RemoteEvent, gone.id: Removed}
    (listed,) = [i for i in items if isinstance(i, RemoteEvent)]
    assert listed.title == "Changé par la personne"
    next_token = pages[-1].sync_token
    assert next_token and next_token != sync_token
    # Nothing changed since: nothing listed.
    assert [i for p in _listing(connected, window, sync_token=next_token) for i in p.items] == []


def test_a_refused_sync_state_raises_sync_token_expired(connected, sandbox_settings):
    window = _window()
    sync_token = _listing(connected, window)[-1].sync_token
    refused = requests.post(
        f"{sandbox_settings.http_url}/_sandbox/api/accounts/{connected.account.email}"
        "/invalidate-sync",
        timeout=5,
    )
    assert refused.status_code == 204

    with pytest.raises(SyncTokenExpired):
        _listing(connected, window, sync_token=sync_token)

    # Listing everything again gives a sync state the provider takes.
    fresh = _listing(connected, window)[-1].sync_token
    assert fresh
    _listing(connected, window, sync_token=fresh)


# --- writing ----------------------------------------------------------------------------------


def test_a_batch_of_writes_creates_updates_and_deletes_events(connected, formation):
    first, second, third = (formation(f"Formation {n}", days=n) for n in (1, 2, 3))

    outcomes, sent = connected.write(
        [connected.create(k, f) for k, f in enumerate((first, second, third))]
    )

    assert [(o.key, o.status) for o in outcomes] == [
        (0, Outcome.OK),
        (1, Outcome.OK),
        (2, Outcome.OK),
    ]
    assert 1 <= sent <= 3
    ids, versions = [o.event_id for o in outcomes], [o.version for o in outcomes]
    assert all(ids) and len(set(ids)) == 3 and all(versions)
    for event_id, written in zip(ids, (first, second, third), strict=True):
        event = connected.live_event(event_id)
        assert (event.title, event.location) == (written.title, written.location)
        assert (event.start_utc(), event.end_utc()) == (written.start, written.end)
        assert connected.carrying(written.uid) == [event_id]

    renamed = dataclasses.replace(first, title="Formation renommée")
    fourth = formation("Formation 4", days=4)
    outcomes, sent = connected.write(
        [
            connected.update(0, ids[0], renamed),
            connected.delete(1, ids[1]),
            connected.create(2, fourth),
        ]
    )

    assert [(o.key, o.status) for o in outcomes] == [
        (0, Outcome.OK),
        (1, Outcome.OK),
        (2, Outcome.OK),
    ]
    assert 1 <= sent <= 3
    updated, _deleted, created = outcomes
    assert updated.event_id == ids[0] and updated.version not in ("", versions[0])
    assert connected.live_event(ids[0]).title == "Formation renommée"
    assert connected.live_event(ids[1]) is None and connected.carrying(second.uid) == []
    assert connected.live_event(ids[2]).title == third.title
    assert connected.carrying(fourth.uid) == [created.event_id]


def test_the_same_create_sent_twice_leaves_one_event(connected, formation):
    written = formation()
    (first,), _ = connected.write([connected.create(0, written)])
    assert first.status == Outcome.OK

    (again,), _ = connected.write([connected.create(0, written)])  # its answer was lost

    assert connected.carrying(written.uid) == [first.event_id]
    if connected.create(0, written).event_id:  # ids chosen before creating (Google)
        assert (again.status, again.event_id) == (Outcome.EXISTS, first.event_id)
    else:  # ids chosen by the provider: the event is found by its marker (Outlook)
        assert (again.status, again.event_id) in {
            (Outcome.OK, first.event_id),
            (Outcome.EXISTS, first.event_id),
        }
        (found,), _ = connected.write([connected.find(0, written.uid)])
        assert (found.status, found.event_id, found.duplicates) == (
            Outcome.OK,
            first.event_id,
            [],
        )
        (never,), _ = connected.write([connected.find(0, str(uuid.uuid4()))])
        assert never.status == Outcome.MISSING


def test_writing_to_an_event_the_learner_deleted_answers_gone(connected, formation, sandbox):
    written = formation()
    (created,), _ = connected.write([connected.create(0, written)])
    sandbox.store.delete(
        connected.account, connected.remote, connected.remote.events[created.event_id]
    )

    (deleted,), _ = connected.write([connected.delete(0, created.event_id)])
    (updated,), _ = connected.write([connected.update(0, created.event_id, written)])

    assert deleted.status == Outcome.GONE
    assert updated.status in {Outcome.GONE, Outcome.REMOVED}  # not brought back
    assert connected.carrying(written.uid) == []


# --- push ---------------------------------------------------------------------------------------


class _Listener:
    """A webhook on loopback: answers Graph's validation handshake; records what else it is
    sent (each request's headers and body, as text)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                token = parse_qs(urlsplit(self.path).query).get("validationToken")
                if token:
                    answer = token[0].encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                listener.received.append(f"{self.headers}\n{body.decode(errors='replace')}")
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def carrying(self, secret: str) -> int:
        return sum(secret in text for text in self.received)

    def settled(self, quiet: float = 0.5, timeout: float = 10.0) -> None:
        """Waits until nothing has arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = len(self.received)
            time.sleep(quiet)
            if len(self.received) == count:
                return

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    webhook = _Listener()
    yield webhook
    webhook.close()


def _change_an_event(connected: Connected, sandbox: Any, restore: Callable[..., None]) -> None:
    """The learner renames an event of the watched calendar, at the provider."""
    window = _window()
    event = next(
        e
        for e in connected.remote.events.values()
        if e.id in _in_window(connected, window) and not e.all_day and not e.series_id
    )
    restore(connected, event)
    sandbox.store.save(
        connected.account,
        connected.remote,
        dataclasses.replace(event, title=f"Renommé {secrets.token_hex(4)}"),
    )


def test_a_push_channel_calls_back_on_changes_until_stopped(connected, listener, sandbox, restore):
    push = connected.provider.push
    if push is None:
        pytest.skip("a provider without push notifications is polled by the periodic sync")
    secret = secrets.token_urlsafe(32)
    now = timezone.now()
    asked = now + timedelta(days=1)

    channel = push.watch(
        connected.token,
        address=listener.address,
        secret=secret,
        calendar_id=connected.calendar_id if push.per_calendar else "",
        expires_at=asked,
    )
    stopped = False
    try:
        assert channel.channel_id
        assert now < channel.expires_at <= asked + timedelta(seconds=1)
        listener.settled()
        before = listener.carrying(secret)
        _change_an_event(connected, sandbox, restore)
        assert wait_for(lambda: listener.carrying(secret) > before), "no notification"

        later = now + timedelta(days=2)
        renewed = push.renew_watch(connected.token, channel_id=channel.channel_id, expires_at=later)
        # None: the provider cannot extend a channel (a new one replaces it).
        assert renewed is None or channel.expires_at < renewed <= later + timedelta(seconds=1)

        push.stop_watch(
            connected.token, channel_id=channel.channel_id, resource_id=channel.resource_id
        )
        stopped = True
        listener.settled()
        after = listener.carrying(secret)
        _change_an_event(connected, sandbox, restore)
        time.sleep(1.0)
        assert listener.carrying(secret) == after, "notified after the channel was stopped"
        # A channel the provider no longer knows: closing it again is not an error.
        push.stop_watch(
            connected.token, channel_id=channel.channel_id, resource_id=channel.resource_id
        )
    finally:
        if not stopped:
            with suppress(ProviderError):
                push.stop_watch(
                    connected.token, channel_id=channel.channel_id, resource_id=channel.resource_id
                )
