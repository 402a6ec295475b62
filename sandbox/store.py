"""The sandbox's data: accounts, calendars and events, provider-neutral, in memory.

Google and Microsoft render the same `Event` in their own JSON shapes (google/events.py,
microsoft/render.py). Every change takes a new `seq` from one counter, so sync tokens and delta
links are simply "the last seq seen". Deleted events stay as tombstones (`deleted=True`) so
incremental listings can report them. All access goes through `Store.lock`.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dateutil.rrule import rrulestr

GOOGLE = "google"
MICROSOFT = "microsoft"

# The real tenant id of personal Microsoft accounts (Outlook.com, Hotmail).
CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
CONTOSO_TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"

OTHER_ZONES = ["America/New_York", "Asia/Tokyo", "America/Montreal", "Australia/Sydney"]
LOCAL_ZONE = "Europe/Paris"
GOOGLE_ODD_TYPES = ["workingLocation", "outOfOffice", "focusTime", "birthday"]

BASE32HEX = "0123456789abcdefghijklmnopqrstuv"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_google_id(rng: random.Random | None = None) -> str:
    r = rng or random.SystemRandom()
    return "".join(r.choice(BASE32HEX) for _ in range(26))


def new_graph_id(rng: random.Random | None = None) -> str:
    r = rng or random.SystemRandom()
    raw = bytes(r.getrandbits(8) for _ in range(70))
    return "AAMkA" + base64.urlsafe_b64encode(raw).decode().rstrip("=").replace("-", "_")


@dataclass
class Account:
    provider: str  # GOOGLE or MICROSOFT
    email: str
    name: str
    uid: str  # Google "sub" / Microsoft object id
    tenant_id: str = ""  # Microsoft only
    calendars: dict[str, Calendar] = field(default_factory=dict)

    @property
    def primary(self) -> Calendar:
        return next(c for c in self.calendars.values() if c.primary)


@dataclass
class Calendar:
    id: str
    name: str
    primary: bool
    can_edit: bool
    time_zone: str
    color: str
    events: dict[str, Event] = field(default_factory=dict)
    # Sync tokens and delta links older than this are refused (410), as after a server-side
    # reset of sync state.
    min_valid_seq: int = 0
    # The seq of the last change to any of its events: what listings derived from the events
    # (sandbox/paging.py) stay valid for.
    version: int = 0


@dataclass
class Event:
    id: str
    calendar_id: str
    ical_uid: str
    title: str
    start: datetime | date  # aware datetime, or a date for all-day events
    end: datetime | date  # exclusive for all-day events
    time_zone: str = LOCAL_ZONE
    description: str = ""
    location: str = ""
    online_url: str = ""
    status: str = "confirmed"  # confirmed, tentative, cancelled
    event_type: str = "default"  # Google eventType; unknown ones are kept as they come
    recurrence: list[str] = field(default_factory=list)  # RRULE/EXDATE lines of a series master
    series_id: str = ""  # for an occurrence: its series master's id
    original_start: datetime | date | None = None  # for an occurrence: its slot in the series
    is_exception: bool = False  # an occurrence that was moved, edited or cancelled
    created: datetime = field(default_factory=utcnow)
    updated: datetime = field(default_factory=utcnow)
    seq: int = 0
    deleted: bool = False  # a tombstone, kept for incremental listings
    private_properties: dict[str, str] = field(default_factory=dict)
    transaction_id: str = ""
    # An invitation: organised by someone else (`organizer`, an e-mail), with the account's
    # own answer (`response`: needsAction, accepted, tentative, declined, in Google's words).
    organizer: str = ""
    response: str = ""
    free: bool = False  # shows as free: does not block time (Google transparency, Graph showAs)
    # Provider fields the sandbox does not interpret but returns as given (attendees, ...).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)

    @property
    def is_master(self) -> bool:
        return bool(self.recurrence)

    @property
    def is_occurrence(self) -> bool:
        return bool(self.series_id)

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(f"{self.id}:{self.seq}".encode()).hexdigest()[:16] + '"'  # noqa: S324

    def start_utc(self) -> datetime:
        return as_utc(self.start, self.time_zone)

    def end_utc(self) -> datetime:
        return as_utc(self.end, self.time_zone)


def as_utc(value: datetime | date, zone: str) -> datetime:
    """A date (all-day) is taken as midnight in `zone`."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(UTC)


ChangeListener = Callable[[Account, Calendar, Event], None]


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self._seq = 0
        self._listeners: list[ChangeListener] = []

    # --- reading ------------------------------------------------------------------------

    def account(self, email: str) -> Account | None:
        return self.accounts.get(email.lower())

    def accounts_of(self, provider: str) -> list[Account]:
        return [a for a in self.accounts.values() if a.provider == provider]

    def find_event(self, account: Account, calendar_id: str, event_id: str) -> Event | None:
        calendar = account.calendars.get(calendar_id)
        if calendar is None:
            return None
        event = calendar.events.get(event_id)
        return event if event is not None and not event.deleted else None

    @property
    def seq(self) -> int:
        return self._seq

    # --- writing ------------------------------------------------------------------------

    def next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    def add_account(self, account: Account) -> Account:
        with self.lock:
            self.accounts[account.email.lower()] = account
            return account

    def on_change(self, listener: ChangeListener) -> None:
        """`listener` is called after every save, possibly with the store's lock held: it must
        only hand the change over (to a queue), never block or call the network."""
        self._listeners.append(listener)

    def save(
        self, account: Account, calendar: Calendar, event: Event, *, notify: bool = True
    ) -> Event:
        """Insert or replace `event`, stamping it with a new seq; tells the listeners."""
        with self.lock:
            event.seq = self.next_seq()
            event.updated = utcnow()
            calendar.events[event.id] = event
            calendar.version = event.seq
        if notify:
            for listener in self._listeners:
                listener(account, calendar, event)
        return event

    def delete(self, account: Account, calendar: Calendar, event: Event) -> None:
        """Leave a tombstone; deleting a series master deletes its occurrences too, and deleting
        an occurrence changes its master (the series now skips that date)."""
        with self.lock:
            doomed = [event]
            if event.is_master:
                doomed += [e for e in calendar.events.values() if e.series_id == event.id]
            for item in doomed:
                if not item.deleted:
                    item.deleted = True
                    item.status = "cancelled"
                    self.save(account, calendar, item)
            master = calendar.events.get(event.series_id) if event.series_id else None
            if master is not None and not master.deleted:
                self.save(account, calendar, master)

    def invalidate_sync_state(self, account: Account) -> None:
        """Every sync token / delta link issued so far for this account's calendars -> 410."""
        with self.lock:
            for calendar in account.calendars.values():
                calendar.min_valid_seq = self.next_seq()


def expand_series(master: Event, rng_ids: Callable[[], str] | None = None) -> list[Event]:
    """Occurrences of a recurring series, as separate events (ids as Google forms them)."""
    start = master.start
    duration = _span(master.start, master.end)
    rule_lines = "\n".join(master.recurrence)
    if isinstance(start, datetime):
        local = start.astimezone(zoneinfo.ZoneInfo(master.time_zone)).replace(tzinfo=None)
        rule = rrulestr(rule_lines, dtstart=local, forceset=True)
        zone = zoneinfo.ZoneInfo(master.time_zone)
        slots: list[datetime | date] = [d.replace(tzinfo=zone) for d in _bounded(rule)]
    else:
        rule = rrulestr(rule_lines, dtstart=datetime.combine(start, time(0)), forceset=True)
        slots = [d.date() for d in _bounded(rule)]
    occurrences = []
    for slot in slots:
        occurrences.append(
            Event(
                id=f"{master.id}_{occurrence_suffix(slot)}",
                calendar_id=master.calendar_id,
                ical_uid=master.ical_uid,
                title=master.title,
                start=slot,
                end=slot + duration,
                time_zone=master.time_zone,
                description=master.description,
                location=master.location,
                online_url=master.online_url,
                status=master.status,
                event_type=master.event_type,
                series_id=master.id,
                original_start=slot,
                created=master.created,
                private_properties=dict(master.private_properties),
                organizer=master.organizer,
                response=master.response,
                free=master.free,
            )
        )
    return occurrences


def occurrence_suffix(slot: datetime | date) -> str:
    if isinstance(slot, datetime):
        return slot.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return slot.strftime("%Y%m%d")


def _bounded(rule: Any, limit: int = 730) -> Iterator[datetime]:
    for index, value in enumerate(rule):
        if index >= limit:
            return
        yield value


def _span(start: datetime | date, end: datetime | date) -> timedelta:
    return end - start  # type: ignore[operator]


# --- generated data ---------------------------------------------------------------------

ACCOUNTS = [
    # provider, email, name, tenant
    (GOOGLE, "camille.durand@gmail.test", "Camille Durand", ""),
    (GOOGLE, "alex.martin@gmail.test", "Alex Martin", ""),
    (GOOGLE, "sam.nguyen@gmail.test", "Sam Nguyễn", ""),
    (MICROSOFT, "camille.durand@contoso.test", "Camille Durand", CONTOSO_TENANT_ID),
    (MICROSOFT, "alex.martin@contoso.test", "Alex Martin", CONTOSO_TENANT_ID),
    (MICROSOFT, "sam.nguyen@outlook.test", "Sam Nguyễn", CONSUMERS_TENANT_ID),
]

TITLES = [
    "Point d'équipe",
    "Réunion client — Société Générale",
    "Déjeuner avec Zoë",
    "Revue de sprint",
    "Entretien annuel",
    "Café ☕ avec l'équipe",
    "Dentiste",
    "Appel fournisseur",
    "Atelier UX <b>important</b>",
    "Préparation séminaire",
    "Rendez-vous médecin",
    "Cours de yoga",
    "Comité de direction",
    "<script>alert('agenda')</script>",
    "Weekly sync",
    "1:1 with Jürgen & Søren",
    "東京チームとの会議",
    "Formation sécurité incendie",
]
DESCRIPTIONS = [
    "",
    "Ordre du jour : budget, planning, questions diverses.",
    '<p>Lien du document : <a href="https://docs.example.com/d/1">compte rendu</a></p>',
    "Apporter l'ordinateur portable.\nSalle au 3ᵉ étage.",
    'Notes: "quoted" & <angle> brackets',
]
LOCATIONS = ["", "", "Salle Voltaire", "Paris 9e — 12 rue Lafayette", "Café de la Gare", "Teams"]


def generate(store: Store, *, seed: int = 1, events: int = 200, today: date | None = None) -> None:
    """Fill `store` with accounts whose primary calendars hold `events` entries each.

    Deterministic for a given seed, size and day. The mix: single timed events, all-day and
    multi-day events, events in other time zones, weekly series (one occurrence moved, one
    cancelled), cancelled events, events of types Google does not document for us, and titles
    with non-ASCII text and HTML.
    """
    today = today or datetime.now(UTC).date()
    rng = random.Random(seed)
    for provider, email, name, tenant in ACCOUNTS:
        account = store.add_account(
            Account(
                provider=provider,
                email=email,
                name=name,
                uid=str(uuid.UUID(int=rng.getrandbits(128)))
                if provider == MICROSOFT
                else str(rng.randrange(10**20, 10**21)),
                tenant_id=tenant,
            )
        )
        new_id = (lambda: new_google_id(rng)) if provider == GOOGLE else (lambda: new_graph_id(rng))
        primary_id = email if provider == GOOGLE else new_id()
        calendars = [
            Calendar(primary_id, name if provider == GOOGLE else "Calendar", True, True,
                     LOCAL_ZONE, "#0b5cad"),
            Calendar(f"{new_google_id(rng)}@group.calendar.google.test" if provider == GOOGLE
                     else new_id(), "Équipe projet", False, True, LOCAL_ZONE, "#2e7d32"),
            Calendar("fr.french#holiday@group.v.calendar.google.test" if provider == GOOGLE
                     else new_id(), "Jours fériés en France", False, False, LOCAL_ZONE,
                     "#a1261c"),
        ]  # fmt: skip
        for calendar in calendars:
            account.calendars[calendar.id] = calendar
        _fill(store, account, calendars[0], rng, new_id, events, today)
        _fill(store, account, calendars[1], rng, new_id, max(events // 10, 5), today)
        _fill_holidays(store, account, calendars[2], rng, new_id, today)


ORGANIZERS = [
    "claire.bernard@partenaire.test",
    "direction@formations.test",
    "hugo.petit@client.test",
]
RESPONSES = ["accepted", "tentative", "declined", "needsAction"]


def _invite(event: Event, account: Account) -> None:
    """About one event in six is someone else's meeting the account was invited to (answered
    accepted, tentative, declined or not yet), and one in twenty of the account's own shows
    as free. Decided from the event's iCalUID, not the generator, so the rest of the data
    stays the same."""
    bucket = int(event.ical_uid[:8], 16) % 24
    if bucket < 4:
        event.organizer = ORGANIZERS[bucket % len(ORGANIZERS)]
        event.response = RESPONSES[bucket]
    elif bucket == 4:
        event.free = True


def _fill(
    store: Store,
    account: Account,
    calendar: Calendar,
    rng: random.Random,
    new_id: Callable[[], str],
    count: int,
    today: date,
) -> None:
    made = 0
    while made < count:
        roll = rng.random()
        day = today + timedelta(days=rng.randrange(-30, 365))
        ical_uid = f"{uuid.UUID(int=rng.getrandbits(128))}@sandbox.test"
        event = Event(
            id=new_id(),
            calendar_id=calendar.id,
            ical_uid=ical_uid,
            title=rng.choice(TITLES),
            start=day,
            end=day,
            description=rng.choice(DESCRIPTIONS),
            location=rng.choice(LOCATIONS),
            time_zone=calendar.time_zone,
        )
        if rng.random() < 0.15:
            event.online_url = f"https://meet.sandbox.test/{rng.getrandbits(32):08x}"
        zone = zoneinfo.ZoneInfo(calendar.time_zone)
        start_local = datetime.combine(day, time(rng.randrange(8, 19), rng.choice([0, 15, 30])))
        event.start = start_local.replace(tzinfo=zone)
        event.end = event.start + timedelta(minutes=rng.choice([30, 45, 60, 60, 90, 120]))
        _invite(event, account)

        if roll < 0.10:  # all-day, sometimes over several days
            event.start = day
            event.end = day + timedelta(days=rng.choice([1, 1, 1, 2, 3, 5]))
        elif roll < 0.15:  # in another time zone
            event.time_zone = rng.choice(OTHER_ZONES)
            other = zoneinfo.ZoneInfo(event.time_zone)
            event.start = datetime.combine(day, time(rng.randrange(7, 18))).replace(tzinfo=other)
            event.end = event.start + timedelta(hours=1)
        elif roll < 0.18:  # cancelled
            event.status = "cancelled"
        elif roll < 0.20 and account.provider == GOOGLE:  # a type the product does not know
            event.event_type = rng.choice(GOOGLE_ODD_TYPES)
        elif roll < 0.26 and count - made > 12:  # a weekly series of 6 to 12 occurrences
            event.recurrence = [f"RRULE:FREQ=WEEKLY;COUNT={rng.randrange(6, 13)}"]
            event.title = rng.choice(["Point hebdo", "Cours d'anglais", "Stand-up équipe"])
            store.save(account, calendar, event, notify=False)
            occurrences = expand_series(event)
            moved, cancelled = occurrences[1], occurrences[2]
            moved.start = moved.start + timedelta(hours=2)  # type: ignore[operator]
            moved.end = moved.end + timedelta(hours=2)  # type: ignore[operator]
            moved.is_exception = True
            cancelled.status = "cancelled"
            cancelled.is_exception = True
            for occurrence in occurrences:
                if account.provider == MICROSOFT:
                    occurrence.id = new_id()
                store.save(account, calendar, occurrence, notify=False)
            made += sum(o.status != "cancelled" for o in occurrences)
            continue
        store.save(account, calendar, event, notify=False)
        made += event.status != "cancelled"


def _fill_holidays(
    store: Store,
    account: Account,
    calendar: Calendar,
    rng: random.Random,
    new_id: Callable[[], str],
    today: date,
) -> None:
    for month, day, title in [(1, 1, "Jour de l'an"), (5, 1, "Fête du Travail"),
                              (7, 14, "Fête nationale"), (11, 11, "Armistice"),
                              (12, 25, "Noël")]:  # fmt: skip
        for year in (today.year, today.year + 1):
            when = date(year, month, day)
            store.save(
                account,
                calendar,
                Event(
                    id=new_id(),
                    calendar_id=calendar.id,
                    ical_uid=f"{when:%Y%m%d}_{month}{day}@holidays.sandbox.test",
                    title=title,
                    start=when,
                    end=when + timedelta(days=1),
                ),
                notify=False,
            )
