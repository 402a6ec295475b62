"""The interface every calendar provider implements, split by role.

A provider is three clients: `oauth` (the learner's consent and the tokens it gives),
`calendars` (listing calendars and events, writing the formations' events) and `push`
(notification channels; None for a provider without push, which the periodic sync polls).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from calendars.errors import ProviderError, SyncTokenExpired
from calendars.providers.types import (
    Authorization,
    CalendarInfo,
    EventPage,
    ExportedFormation,
    Grant,
    PushChannelInfo,
    RemoteEvent,
    Removed,
    Write,
    WriteOutcome,
)

# How long an access token read from storage must stay good for a sync to use it without
# asking for another: longer than a sync takes.
STORED_TOKEN_MARGIN = timedelta(minutes=5)


class OAuthClient(ABC):
    """The authorization code flow with PKCE, token refresh and revocation."""

    @abstractmethod
    def start(
        self, *, redirect_uri: str, state: str, login_hint: str = "", missing_only: bool = False
    ) -> Authorization:
        """Begins the authorization code flow with PKCE; `missing_only`: asks just for the
        permissions `missing_scopes` names, keeping those already granted (incremental
        authorization), where the provider allows it."""

    def missing_scopes(self, granted: list[str]) -> list[str]:
        """The permissions the integration needs that `granted` lacks (none by default)."""
        return []

    @abstractmethod
    def finish(self, *, flow: dict[str, Any], redirect_uri: str, params: dict[str, str]) -> Grant:
        """Exchanges the callback's code for tokens; `params` is the callback's query."""

    @abstractmethod
    def access_token(self, credentials: dict[str, Any], *, force: bool = False) -> Grant:
        """A valid access token, refreshed if expired (or if `force`); the Grant carries the
        credentials to store (refresh tokens may have rotated)."""

    def stored_access_token(self, credentials: dict[str, Any]) -> str | None:
        """The access token `credentials` hold when it stays good for STORED_TOKEN_MARGIN
        at least, else None; never calls the provider (nothing is refreshed, so nothing needs
        saving). None by default: every token is asked of `access_token`."""
        return None

    def sign_in(self, *, url: str, username: str, password: str) -> Grant:
        """For a provider connected with a form (`ProviderInfo.connection` "password"):
        checks the server address, username and password at once and returns the Grant to
        store; AuthorizationDenied when the server refuses them. OAuth providers have none."""
        raise NotImplementedError(f"{type(self).__name__} connects through OAuth")

    @abstractmethod
    def revoke(self, credentials: dict[str, Any]) -> bool:
        """Withdraws the grant at the provider where it can (Google); best effort. True when
        the provider confirmed it."""


class CalendarClient(ABC):
    """The learner's calendars and their events."""

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

    def list_series(
        self,
        access_token: str,
        calendar_id: str,
        series_id: str,
        *,
        window: tuple[datetime, datetime],
    ) -> list[RemoteEvent | Removed] | None:
        """Every occurrence of the series in `window`, read again after its master changed;
        [] when the series is gone. None (the default): the provider's incremental listings
        report every change to a series, nothing needs reading again."""
        return None

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


class PushClient(ABC):
    """Channels that call us back when something changes."""

    # Google watches one calendar per channel; a Graph subscription covers the mailbox.
    per_calendar: bool

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


@dataclass(frozen=True)
class Provider:
    """One provider: its registry name and its three clients."""

    name: str
    oauth: OAuthClient
    calendars: CalendarClient
    push: PushClient | None = None


def state_refused(error: ProviderError, state: str) -> ProviderError:
    """A listing sent with a sync token or a page token (`state`) that the provider refuses
    with a 400 or 410: that state is spent, and the listing must start again. Other errors,
    and errors of a listing without state, are what they are."""
    if state and error.status in (400, 410) and not isinstance(error, SyncTokenExpired):
        return SyncTokenExpired(f"The provider refused the stored listing state: {error.message}")
    return error


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header given in seconds (the form Google and Graph use), else None."""
    try:
        return float(value) if value else None
    except ValueError:
        return None
