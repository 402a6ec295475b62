"""What every calendar provider offers, and the two kinds of failure it reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


class ProviderError(Exception):
    """A provider call failed. `permanent` failures (grant revoked, calendar gone) need the
    learner; the others (rate limit, 5xx, timeout) are retried later. The message is shown
    to people and logged: it never contains a token, code or key."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header given in seconds (the form Google and Graph use), else None."""
    try:
        return float(value) if value else None
    except ValueError:
        return None


class ReconnectRequired(ProviderError):
    """The grant is gone (revoked, expired, too many tokens): only a new consent helps."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class AuthorizationDenied(ProviderError):
    """The learner refused, or the provider refused the authorization request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class Unauthorized(ProviderError):
    """An API call got 401: refresh the access token once, then try again."""


class SyncTokenExpired(ProviderError):
    """The stored sync token or delta link is no longer valid (410): import everything again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False)


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
    formation_marker: str = ""  # set on events this application exported


@dataclass(frozen=True)
class Removed:
    """An event deleted (or cancelled) at the provider since the last listing."""

    external_id: str


@dataclass
class EventPage:
    items: list[RemoteEvent | Removed]
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


class Provider(ABC):
    name: str  # the key in the registry and in URLs: "google", "outlook"
    title: str  # shown to people

    @abstractmethod
    def is_configured(self) -> bool:
        """Whether client credentials are set (else the provider shows as unavailable)."""

    @abstractmethod
    def start(self, *, redirect_uri: str, state: str, login_hint: str = "") -> Authorization:
        """Begins the authorization code flow with PKCE."""

    @abstractmethod
    def finish(self, *, flow: dict[str, Any], redirect_uri: str, params: dict[str, str]) -> Grant:
        """Exchanges the callback's code for tokens; `params` is the callback's query."""

    @abstractmethod
    def access_token(self, credentials: dict[str, Any], *, force: bool = False) -> Grant:
        """A valid access token, refreshed if expired (or if `force`); the Grant carries the
        credentials to store (refresh tokens may have rotated)."""

    @abstractmethod
    def list_calendars(self, access_token: str) -> list[CalendarInfo]:
        """Every calendar of the account; raises Unauthorized on a 401."""

    @abstractmethod
    def list_events(
        self,
        access_token: str,
        calendar_id: str,
        *,
        window: tuple[datetime, datetime],
        sync_token: str = "",
        page: str = "",
    ) -> EventPage:
        """One page of a full listing over `window` (occurrences of series expanded), or of an
        incremental one from `sync_token`; `page` resumes a listing. Raises SyncTokenExpired
        when the provider wants a full listing again."""

    @abstractmethod
    def export_event_id(self, *, owner: str, calendar_id: str, uid: str, copy: int) -> str:
        """The event id chosen for an export before creating it, where the provider lets the
        client choose one (Google), else "" (known once created)."""

    @abstractmethod
    def event_body(self, formation: ExportedFormation) -> dict[str, Any]:
        """The provider's JSON for the event standing for `formation` (create and update)."""

    @abstractmethod
    def write_events(
        self, access_token: str, writes: list[Write]
    ) -> tuple[list[WriteOutcome], int]:
        """Carries out `writes` in as few requests as the provider allows; returns one outcome
        per write and the number of HTTP requests sent. Raises Unauthorized on a 401 of the
        whole request; a failed write is a FAILED outcome carrying its error."""

    # Push: Google watches one calendar per channel; a Graph subscription covers the mailbox.
    push_per_calendar: bool

    @abstractmethod
    def watch(
        self,
        access_token: str,
        *,
        calendar_id: str,
        address: str,
        secret: str,
        expires_at: datetime,
    ) -> PushChannelInfo:
        """Opens a push channel calling `address` on changes (to the calendar `calendar_id`,
        or to the mailbox where channels are per account), each notification carrying
        `secret`, until `expires_at` or earlier if the provider says so."""

    @abstractmethod
    def renew_watch(
        self, access_token: str, *, channel_id: str, expires_at: datetime
    ) -> datetime | None:
        """Extends a channel; returns its new end, or None where the provider cannot extend
        one (Google: open a new channel, then stop the old one)."""

    @abstractmethod
    def stop_watch(self, access_token: str, *, channel_id: str, resource_id: str) -> None:
        """Closes a channel; one the provider no longer knows is not an error."""

    @abstractmethod
    def revoke(self, credentials: dict[str, Any]) -> None:
        """Withdraws the grant at the provider where it can (Google); best effort."""
