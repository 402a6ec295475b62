"""The provider contract suite (tests/calendars/providers/test_contract.py) run on the CalDAV
provider, against Radicale and Xandikos instead of the sandbox.

The contract's tests are taken as they are; what they ask of the sandbox is given here by a
small stand-in: the account and its calendar (`connected.remote.events`, read straight from
the server), `store.save` and `store.delete` (what the learner does in their calendar
application), and the sandbox's "invalidate-sync" control, answered by the proxy
(tests/calendars/providers/test_contract.py lists this module in ON_REAL_SERVERS).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import icalendar
import pytest
import recurring_ical_events
from django.utils import timezone

from calendars.providers.caldav import provider
from calendars.providers.caldav.normalize import FORMATION_PROPERTY, occurrence_id
from calendars.providers.types import ExportedFormation
from tests.calendars.providers.caldav.servers import DavServer
from tests.calendars.providers.test_contract import (  # noqa: F401 (collected here)
    Connected,
    listener,
    test_a_batch_of_writes_creates_updates_and_deletes_events,
    test_a_full_listing_gives_every_event_of_the_window_page_after_page,
    test_a_push_channel_calls_back_on_changes_until_stopped,
    test_a_refused_sync_state_raises_sync_token_expired,
    test_an_incremental_listing_gives_the_events_changed_or_deleted_since,
    test_the_same_create_sent_twice_leaves_one_event,
    test_writing_to_an_event_the_learner_deleted_answers_gone,
)

# Wide enough for every window the contract's tests use.
SPAN = timedelta(days=400)


@dataclasses.dataclass
class StoredEvent:
    """An event of the server's calendar in the shape the contract reads sandbox events in."""

    id: str
    resource: str
    raw: str
    title: str
    location: str
    start: datetime
    end: datetime
    all_day: bool = False
    series_id: str = ""
    is_master: bool = False
    status: str = "confirmed"
    deleted: bool = False
    private_properties: dict[str, str] = dataclasses.field(default_factory=dict)
    transaction_id: str = ""

    def start_utc(self) -> datetime:
        return self.start

    def end_utc(self) -> datetime:
        return self.end


def _utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return datetime.combine(value, datetime.min.time(), UTC)


def _stored(name: str, raw: str, component: Any, event_id: str, series: str) -> StoredEvent:
    begins = component["DTSTART"].dt
    ends = component["DTEND"].dt if "DTEND" in component else begins + timedelta(hours=1)
    marker = str(component.get(FORMATION_PROPERTY, ""))
    return StoredEvent(
        id=event_id,
        resource=name,
        raw=raw,
        title=str(component.get("SUMMARY", "")),
        location=str(component.get("LOCATION", "")),
        start=_utc(begins),
        end=_utc(ends),
        all_day=not isinstance(begins, datetime),
        series_id=series,
        status=str(component.get("STATUS", "CONFIRMED")).lower(),
        private_properties={"formation": marker} if marker else {},
    )


class RemoteCalendar:
    """The calendar as the server holds it, read afresh at each look."""

    def __init__(self, dav: DavServer, url: str) -> None:
        self.dav, self.url = dav, url

    @property
    def events(self) -> dict[str, StoredEvent]:
        body = (
            '<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop>'
            '<C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
        )
        answer = self.dav.http(
            "REPORT", self.url, body, **{"Content-Type": "application/xml", "Depth": "1"}
        )
        answer.encoding = "utf-8"
        found: dict[str, StoredEvent] = {}
        pattern = r"<(?:\w+:)?href>([^<]+)</.*?<(?:\w+:)?calendar-data[^>]*>(.*?)</"
        for href, data in re.findall(pattern, answer.text, flags=re.S):
            raw = data.replace("&#13;", "\r").replace("&lt;", "<").replace("&gt;", ">")
            raw = raw.replace("&amp;", "&")
            name = unquote(href.rstrip("/").rsplit("/", 1)[-1])
            calendar = icalendar.Calendar.from_ical(raw)
            vevents = list(calendar.walk("VEVENT"))
            if not vevents:
                continue
            if not any("RRULE" in e or "RECURRENCE-ID" in e for e in vevents):
                found[name] = _stored(name, raw, vevents[0], name, "")
                continue
            master = _stored(name, raw, vevents[0], name, "")
            found[name] = dataclasses.replace(master, is_master=True)
            now = timezone.now()
            for occurrence in recurring_ical_events.of(calendar).between(now - SPAN, now + SPAN):
                original = occurrence["RECURRENCE-ID"].dt
                event_id = occurrence_id(name, original)
                found[event_id] = _stored(name, raw, occurrence, event_id, name)
        return found


@dataclasses.dataclass
class Account:
    email: str
    calendars: dict[str, RemoteCalendar]


class Store:
    """What the learner does to their calendar, as the contract's tests ask the sandbox."""

    def __init__(self, dav: DavServer) -> None:
        self.dav = dav

    def save(self, account: Account, remote: RemoteCalendar, event: StoredEvent) -> None:
        calendar = icalendar.Calendar.from_ical(event.raw)
        for component in calendar.walk("VEVENT"):
            component["SUMMARY"] = event.title
        self.dav.put(remote.url, event.resource, calendar.to_ical().decode())

    def delete(self, account: Account, remote: RemoteCalendar, event: StoredEvent) -> None:
        self.dav.delete(remote.url, event.resource)


@dataclasses.dataclass
class Stand:
    """The sandbox's stand-in: its store, and its address (the proxy's) for its controls."""

    store: Store
    http_url: str


SEED = [
    ("Point d'équipe", 1, 1),
    ("Déjeuner", 2, 1),
    ("Revue", 3, 2),
    ("Atelier", 5, 3),
    ("Entretien", 8, 1),
    ("Conférence", 13, 4),
    ("Passé", -10, 1),
]


def _seed(dav: DavServer, calendar: str) -> None:
    """A calendar like a learner's: single events, an all-day one, a weekly series."""
    noon = timezone.now().astimezone(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    stamp = "%Y%m%dT%H%M%SZ"
    for n, (title, days, hours) in enumerate(SEED):
        start = noon + timedelta(days=days)
        dav.put(calendar, f"seed-{n}.ics", _vevent(
            f"DTSTART:{start:{stamp}}\r\nDTEND:{start + timedelta(hours=hours):{stamp}}\r\n"
            f"SUMMARY:{title}\r\n"))  # fmt: skip
    day = (noon + timedelta(days=4)).date()
    dav.put(calendar, "seed-jour.ics", _vevent(
        f"DTSTART;VALUE=DATE:{day:%Y%m%d}\r\nDTEND;VALUE=DATE:{day + timedelta(days=2):%Y%m%d}"
        "\r\nSUMMARY:Congés\r\n"))  # fmt: skip
    first = noon + timedelta(days=6)
    dav.put(calendar, "seed-serie.ics", _vevent(
        f"DTSTART:{first:{stamp}}\r\nDTEND:{first + timedelta(hours=1):{stamp}}\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=5\r\nSUMMARY:Cours hebdomadaire\r\n"))  # fmt: skip


def _vevent(body: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tests//FR\r\nBEGIN:VEVENT\r\n"
        f"UID:{uuid.uuid4()}\r\nDTSTAMP:20260101T000000Z\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture
def sandbox(dav: DavServer) -> Stand:
    return Stand(Store(dav), dav.url)


@pytest.fixture
def sandbox_settings(sandbox: Stand) -> Stand:
    return sandbox


@pytest.fixture
def connected(dav: DavServer, grant: Any, calendar: str) -> Iterator[Connected]:
    _seed(dav, calendar)
    account = Account(dav.username, {calendar: RemoteCalendar(dav, calendar)})

    def invalidate() -> None:
        # Every token given so far is refused; a change makes the server's next one new.
        dav.invalidate_sync_tokens()
        upstream = f"http://{dav.proxy.upstream[0]}:{dav.proxy.upstream[1]}"
        dav.put(calendar.replace(dav.url, upstream), "touch.ics", _vevent(
            "DTSTART:20200101T100000Z\r\nDTEND:20200101T110000Z\r\nSUMMARY:x\r\n"))  # fmt: skip

    control = f"/_sandbox/api/accounts/{dav.username}/invalidate-sync"
    dav.proxy.controls[control] = invalidate
    yield Connected(
        provider=provider,
        token=grant.access_token,
        owner="1:caldav",
        account=account,
        calendar_id=calendar,
    )
    dav.proxy.controls.pop(control, None)


@pytest.fixture
def restore(sandbox: Stand) -> Iterator[Callable[[Connected, Any], None]]:
    kept: list[tuple[Connected, StoredEvent]] = []
    yield lambda connected, event: kept.append((connected, event))
    for connected, event in reversed(kept):
        sandbox.store.dav.put(connected.calendar_id, event.resource, event.raw)


@pytest.fixture
def formation() -> Callable[..., ExportedFormation]:
    def make(title: str = "Formation du contrat", days: int = 3) -> ExportedFormation:
        start = (timezone.now() + timedelta(days=days)).replace(second=0, microsecond=0)
        url = f"https://formations.example.com/formations/{uuid.uuid4().hex[:6]}/"
        return ExportedFormation(
            uid=str(uuid.uuid4()),
            title=title,
            description=f"Page : {url}",
            location="Paris, salle 3",
            url=url,
            start=start,
            end=start + timedelta(hours=2),
            time_zone="Europe/Paris",
        )

    return make
