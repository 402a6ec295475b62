"""What providers hand to the sync engine and take from it, whatever the provider: events
listed, writes asked for and their outcomes, calendars, channels and grants."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

from calendars.errors import ProviderError

# What a database cannot store in text: NUL (PostgreSQL refuses the whole statement) and
# lone UTF-16 surrogates, which no UTF-8 encoder writes. Providers' JSON can carry both.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """Provider text as the database can keep it: NUL and lone surrogates taken out."""
    return _UNSTORABLE.sub("", text) if isinstance(text, str) else text


def _clean_text_fields(instance: Any) -> None:
    """Every text field of a provider's answer cleaned in one place, as the answer comes in,
    before anything is written."""
    for item in fields(instance):
        value = getattr(instance, item.name)
        if isinstance(value, str) and _UNSTORABLE.search(value):
            object.__setattr__(instance, item.name, storable(value))


# The learner's answer to an invitation, whatever the provider.
RESPONSES = ("needs_action", "accepted", "tentative", "declined")


@dataclass
class RemoteEvent:
    """An event as the provider lists it, in the provider-neutral shape the sync engine uses.

    Timed events have aware `start`/`end`; all-day ones have `start_date`/`end_date` (end
    exclusive) and `start`/`end` at those dates' midnights in `time_zone`.
    """

    external_id: str
    title: str
    start: datetime
    end: datetime
    all_day: bool = False
    start_date: date | None = None
    end_date: date | None = None
    time_zone: str = ""
    ical_uid: str = ""
    description: str = ""
    location: str = ""
    online_url: str = ""
    status: str = "confirmed"
    series_id: str = ""
    change_marker: str = ""
    html_link: str = ""
    # An invitation (someone else organises it): the learner's answer, one of RESPONSES;
    # "" for the learner's own events. `busy`: the event blocks the learner's time (not
    # marked free: Google transparency, Graph showAs).
    response: str = ""
    busy: bool = True
    formation_marker: str = ""  # set on events this application exported

    def __post_init__(self) -> None:
        _clean_text_fields(self)


@dataclass(frozen=True)
class Removed:
    """An event deleted (or cancelled) at the provider since the last listing."""

    external_id: str


@dataclass(frozen=True)
class SeriesChanged:
    """A recurring series whose master the listing gives (it began in the window, or it
    changed): after an incremental listing, its occurrences are read again where the provider
    says so (`CalendarClient.list_series`)."""

    external_id: str


@dataclass(frozen=True)
class SeriesListed:
    """Every occurrence of a series in the window, read again: stored occurrences of the series
    that are not among `ids` are gone."""

    series_id: str
    ids: frozenset[str]


@dataclass
class EventPage:
    items: list[RemoteEvent | Removed | SeriesChanged | SeriesListed]
    skipped: int = 0  # entries that could not be understood (unknown type, bad dates)
    next_page: str = ""  # where to resume this listing
    sync_token: str = ""  # on the last page: where the next incremental listing starts

    @classmethod
    def of(
        cls,
        entries: Iterable[Any],
        normalize: Callable[[Any], RemoteEvent | Removed | None],
        *,
        next_page: str | None,
        sync_token: str | None,
    ) -> EventPage:
        """A page of the provider's raw entries; those `normalize` cannot read are counted."""
        page = cls(items=[], next_page=next_page or "", sync_token=sync_token or "")
        for entry in entries:
            item = normalize(entry)
            if item is None:
                page.skipped += 1
            else:
                page.items.append(item)
        return page


@dataclass(frozen=True)
class ExportedFormation:
    """A formation as a learner's calendar shows it (the provider turns it into its body)."""

    uid: str  # the formation's stable identifier: the private marker on the event
    title: str
    description: str  # ends with the link back to the formation's page
    location: str  # the place, else the online link
    url: str  # the formation's page
    start: datetime
    end: datetime
    time_zone: str  # IANA name of the zone the formation takes place in


class WriteKind:
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    FIND = "find"  # look the formation's event up by its private marker


@dataclass
class Write:
    """One write of an export; `key` is the caller's reference, given back in the outcome."""

    key: int
    kind: str
    calendar_id: str
    event_id: str = ""  # update and delete; Google's create: the id we choose
    body: dict[str, Any] | None = None  # create and update: from Provider.event_body
    uid: str = ""  # create (Outlook's transactionId) and find: the formation's uid
    copy: int = 0
    # Update and delete: the provider's version of the event as last seen (its change
    # marker). CalDAV writes on that condition (If-Match), so that a change made since is
    # noticed (412) rather than overwritten blind; the others leave it aside.
    version: str = ""


class Outcome:
    OK = "ok"
    EXISTS = "exists"  # create: the event is already there (an earlier attempt landed)
    GONE = "gone"  # update or delete: no such event (any more)
    REMOVED = "removed"  # update: the event is there but deleted by the learner
    MISSING = "missing"  # find: no event carries the marker
    FAILED = "failed"


@dataclass
class WriteOutcome:
    key: int
    status: str
    event_id: str = ""
    version: str = ""  # the provider's version of the event after the write
    error: ProviderError | None = None
    duplicates: list[str] = field(default_factory=list)  # find: further events with the marker


@dataclass(frozen=True)
class PushChannelInfo:
    """A push channel the provider opened: its id, what it watches, when it stops."""

    channel_id: str
    resource_id: str
    expires_at: datetime


@dataclass(frozen=True)
class CalendarInfo:
    """One of the learner's calendars, as the provider lists it."""

    external_id: str
    name: str
    primary: bool
    can_edit: bool
    color: str = ""
    time_zone: str = ""

    def __post_init__(self) -> None:
        _clean_text_fields(self)


@dataclass(frozen=True)
class Authorization:
    url: str  # where to send the learner's browser
    flow: dict[str, Any]  # kept server-side until the callback (PKCE verifier, nonce, ...)


@dataclass
class Grant:
    """Credentials after a connect or a refresh."""

    credentials: dict[str, Any]
    access_token: str
    expires_at: datetime | None
    scopes: list[str] = field(default_factory=list)
    account_email: str = ""
    account_name: str = ""

    def __post_init__(self) -> None:
        _clean_text_fields(self)
