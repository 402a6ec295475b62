"""The Microsoft identity platform and Microsoft Graph (calendars), as the sandbox emulates them.

Four routers, one per error shape:

- identity (OAuth JSON errors): OpenID configuration, token endpoint, signing keys
  (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow);
- sign-in pages (HTML errors): the account chooser and consent page a browser opens, served
  from the plain HTTP listener so that a browser never meets the sandbox's certificate;
- Graph v1.0 (Graph JSON errors): /me, calendars, calendarView and its delta, events,
  JSON batching, change-notification subscriptions
  (https://learn.microsoft.com/graph/api/resources/event);
- control: sandbox-only routes for tests (lifecycle notifications).

Deliberate departures from the real service, to make client bugs visible:

- a refresh token stops working as soon as it has been used once (Entra ID keeps old ones valid
  until they expire), so a client that does not persist the newest one fails at once;
- more than 4 requests at the same time for one mailbox get 429 (Outlook's documented limit,
  enforced every time rather than statistically).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import hmac
import html
import ipaddress
import json
import logging
import queue
import re
import secrets
import threading
import time
import uuid
import zoneinfo
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import jwt
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.timezones import iana_zone, windows_zone
from sandbox.pages import event_path
from sandbox.server import HTTPError, Request, Response, Router
from sandbox.store import (
    CONSUMERS_TENANT_ID,
    MICROSOFT,
    Account,
    Calendar,
    Event,
    as_utc,
    expand_series,
    new_graph_id,
    utcnow,
)

if TYPE_CHECKING:
    from sandbox.core import Sandbox

logger = logging.getLogger("sandbox.microsoft")

# --- constants ----------------------------------------------------------------------------

GRAPH_RESOURCE = "https://graph.microsoft.com/"
# Scopes the sandbox knows, by lower-cased name (scopes are case-insensitive in Entra ID).
GRAPH_SCOPES = {
    s.lower(): s
    for s in (
        "User.Read",
        "User.ReadBasic.All",
        "Calendars.Read",
        "Calendars.ReadWrite",
        "Calendars.Read.Shared",
        "Calendars.ReadWrite.Shared",
        "MailboxSettings.Read",
    )
}
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
# What `.default` stands for: the permissions configured on the sandbox's app registration.
DEFAULT_APP_SCOPES = ("Calendars.ReadWrite", "User.Read")
READ_SCOPES = {
    "Calendars.Read",
    "Calendars.ReadWrite",
    "Calendars.Read.Shared",
    "Calendars.ReadWrite.Shared",
}
WRITE_SCOPES = {"Calendars.ReadWrite", "Calendars.ReadWrite.Shared"}
USER_SCOPES = {"User.Read", "User.ReadBasic.All"}

PERMISSION_TEXT = {
    "openid": "Sign you in",
    "profile": "View your basic profile",
    "email": "View your email address",
    "offline_access": "Maintain access to data you have given it access to",
    "User.Read": "Sign you in and read your profile",
    "User.ReadBasic.All": "Read all users' basic profiles",
    "Calendars.Read": "Read your calendars",
    "Calendars.ReadWrite": "Have full access to your calendars",
    "Calendars.Read.Shared": "Read calendars you can access",
    "Calendars.ReadWrite.Shared": "Read and write calendars you can access",
    "MailboxSettings.Read": "Read your mailbox settings",
}

MAX_BATCH_REQUESTS = 20  # https://learn.microsoft.com/graph/json-batching
MAILBOX_CONCURRENCY = 4  # https://learn.microsoft.com/graph/throttling-limits (Outlook)
# https://learn.microsoft.com/graph/api/resources/subscription: Outlook message, event,
# contact: 10,080 minutes (under 7 days); older versions of the page said 4,230.
SUBSCRIPTION_MAX_MINUTES = 10080
DEFAULT_PAGE_SIZE = 10  # calendarView, events and delta pages when no size is asked for
MAX_PAGE_SIZE = 1000
PENDING_LIFETIME = 600  # seconds an open consent page stays usable
SPENT_TOKENS_KEPT = 50_000

# The identity platform's error texts the sandbox uses, by AADSTS code
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
AADSTS = {
    50011: "The redirect URI '{uri}' specified in the request does not match the redirect URIs "
    "configured for the application '{client}'.",
    50020: "User account '{email}' from identity provider does not exist in tenant '{tenant}' "
    "and cannot access the application.",
    50034: "The user account does not exist in the directory.",
    50058: "A silent sign-in request was sent but no user is signed in.",
    50148: "The code_verifier does not match the code_challenge supplied in the authorization "
    "request for PKCE.",
    50173: "The provided grant has expired due to it being revoked, a fresh auth token is "
    "needed. The user might have changed or reset their password.{issued}",
    54005: "OAuth2 Authorization code was already redeemed, please retry with a new valid code "
    "or use an existing refresh token.",
    65001: "The user or administrator has not consented to use the application with ID "
    "'{client}'. Send an interactive authorization request for this user and resource.",
    65004: "User declined to consent to access the app.",
    70000: "The provided value for the '{parameter}' parameter is not valid: {why}",
    70003: "The app requested an unsupported grant type '{grant_type}'.",
    70008: "The provided authorization code or refresh token has expired due to inactivity. "
    "Send a new interactive authorization request for this user and resource.",
    70011: "The provided value for the input parameter 'scope' is not valid. The scope "
    "'{scope}' does not exist.",
    90002: "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
    "are signing into the correct cloud.",
    90014: "This sign-in request has expired or was already used. Start again from the "
    "application.",
    90033: "A transient error has occurred. Please try again.",
    90055: "TenantThrottlingError: There are too many incoming requests.",
    500112: "The reply address '{given}' does not match the reply address '{expected}' "
    "provided when requesting Authorization code.",
    501481: "The Code_Verifier does not match the code_challenge supplied in the authorization "
    "request.",
    501491: "Invalid size of Code_Challenge parameter.",
    700016: "Application with identifier '{client}' was not found in the directory '{tenant}'.",
    700054: "response_type '{response_type}' is not enabled for the application.",
    700082: "The refresh token has expired due to inactivity.{issued}",
    7000215: "Invalid client secret provided. Ensure the secret being sent in the request is "
    "the client secret value, not the client secret ID, for a secret added to app '{client}'.",
    7000218: "The request body must contain the following parameter: 'client_assertion' or "
    "'client_secret'.",
    900144: "The request body must contain the following parameter: '{name}'.",
    9002313: "Invalid request. Request is malformed or invalid.",
}
ROTATED = (
    "it has already been used and was replaced by the refresh token issued with it "
    "(the sandbox rotates refresh tokens)."
)


def aadsts(code: int, **values: str) -> str:
    return f"AADSTS{code}: " + AADSTS[code].format(**values)


LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")

# --- time zones -----------------------------------------------------------------------------

# Windows time zone names (what Outlook stores and reports in originalStartTimeZone) and their
# IANA equivalents (CLDR windowsZones, territory 001), plus the zones the generator uses.


def _tz(iana: str) -> tzinfo:
    return UTC if iana == "UTC" else zoneinfo.ZoneInfo(iana)


# --- small helpers --------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _graph_dt(value: datetime) -> str:
    """Graph's dateTime: local wall time with seven decimals and no offset."""
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}0"


def _stamp(value: datetime) -> str:
    """Graph's DateTimeOffset in UTC, e.g. createdDateTime."""
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}0Z"


def _parse_datetime(text: str) -> datetime | None:
    """ISO 8601 with or without offset (naive = UTC), up to seven decimals."""
    value = (text or "").strip().replace(" ", "+")
    if not value:
        return None
    value = re.sub(r"(\.\d{6})\d+", r"\1", value)
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _change_key(event: Event) -> str:
    digest = hashlib.sha256(f"{event.id}:{event.seq}".encode()).digest()
    return base64.b64encode(digest[:22]).decode()


def _etag(event: Event) -> str:
    return f'W/"{_change_key(event)}"'


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


_HTML_TAG = re.compile(
    r"<\s*/?\s*(p|a|div|br|b|i|u|em|strong|span|ul|ol|li|html|body|table)\b", re.I
)
_TAGS = re.compile(r"<[^>]*>")


def _looks_like_html(text: str) -> bool:
    return bool(_HTML_TAG.search(text))


def _html_to_text(content: str) -> str:
    text = re.sub(r"(?i)<\s*(br|/p|/div|/li)\s*/?>", "\n", content)
    text = html.unescape(_TAGS.sub("", text))
    return re.sub(r"[ \t]+", " ", text).strip()


# --- property ids of extended properties ------------------------------------------------

_PROPERTY_TYPES = {
    t.lower(): t
    for t in (
        "String",
        "Integer",
        "Boolean",
        "SystemTime",
        "Double",
        "Long",
        "Binary",
        "Currency",
        "Float",
        "Short",
        "CLSID",
        "Object",
        "ApplicationTime",
    )
}
_PROPERTY_ID = re.compile(
    r"^\s*(\w+)\s+\{([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12})\}\s+(Name|Id)\s+(\S.*?)\s*$",
    re.I,
)


def normalize_property_id(value: Any) -> str | None:
    """`String {GUID} Name x` with the type and GUID in a canonical form, or None if invalid."""
    if not isinstance(value, str):
        return None
    match = _PROPERTY_ID.match(value)
    if not match or match[1].lower() not in _PROPERTY_TYPES:
        return None
    kind = "Name" if match[3].lower() == "name" else "Id"
    return f"{_PROPERTY_TYPES[match[1].lower()]} {{{match[2].lower()}}} {kind} {match[4]}"


# --- recurrence: RRULE <-> Graph's patternedRecurrence ------------------------------------

_DAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_RRULE_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
_INDEX_NAMES = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}


def _rrule_parts(line: str) -> dict[str, str]:
    body = line.split(":", 1)[1] if ":" in line else line
    return {k.upper(): v for k, _, v in (p.partition("=") for p in body.split(";")) if v}


def _local_start_date(event: Event) -> date:
    if isinstance(event.start, datetime):
        return event.start.astimezone(_tz(event.time_zone)).date()
    return event.start


def recurrence_json(event: Event) -> dict[str, Any] | None:
    """A series master's RRULE as Graph's patternedRecurrence; None if it cannot be mapped."""
    line = next((x for x in event.recurrence if x.upper().startswith("RRULE:")), None)
    if line is None:
        return None
    parts = _rrule_parts(line)
    start = _local_start_date(event)
    interval = int(parts.get("INTERVAL", "1") or 1)
    wkst = parts.get("WKST", "")
    first_day = _DAY_NAMES[_RRULE_DAYS.index(wkst)] if wkst in _RRULE_DAYS else "sunday"
    days: list[str] = []
    index = 0
    for item in filter(None, parts.get("BYDAY", "").split(",")):
        match = re.fullmatch(r"([+-]?\d)?(MO|TU|WE|TH|FR|SA|SU)", item.upper())
        if not match:
            return None
        days.append(_DAY_NAMES[_RRULE_DAYS.index(match[2])])
        index = int(match[1]) if match[1] else index
    if parts.get("BYSETPOS"):
        index = int(parts["BYSETPOS"].split(",")[0])
    pattern: dict[str, Any] = {
        "type": "",
        "interval": interval,
        "month": 0,
        "dayOfMonth": 0,
        "daysOfWeek": [],
        "firstDayOfWeek": first_day,
        "index": "first",
    }
    freq = parts.get("FREQ", "")
    if freq == "DAILY":
        pattern["type"] = "daily"
    elif freq == "WEEKLY":
        pattern.update(type="weekly", daysOfWeek=days or [_DAY_NAMES[start.weekday()]])
    elif freq in {"MONTHLY", "YEARLY"}:
        prefix = "Monthly" if freq == "MONTHLY" else "Yearly"
        if freq == "YEARLY":
            pattern["month"] = int(parts.get("BYMONTH", start.month))
        if days:
            if index not in _INDEX_NAMES:
                return None
            pattern.update(type=f"relative{prefix}", daysOfWeek=days, index=_INDEX_NAMES[index])
        else:
            day = int(parts.get("BYMONTHDAY", start.day))
            pattern.update(type=f"absolute{prefix}", dayOfMonth=day)
    else:
        return None
    range_: dict[str, Any] = {
        "type": "noEnd",
        "startDate": start.isoformat(),
        "endDate": "0001-01-01",
        "recurrenceTimeZone": windows_zone(event.time_zone),
        "numberOfOccurrences": 0,
    }
    if parts.get("COUNT"):
        range_.update(type="numbered", numberOfOccurrences=int(parts["COUNT"]))
    elif parts.get("UNTIL"):
        until = parts["UNTIL"]
        when = datetime.strptime(until[:8], "%Y%m%d").date()
        range_.update(type="endDate", endDate=when.isoformat())
    return {"pattern": pattern, "range": range_}


def rrule_from_json(value: Any) -> list[str]:
    """Graph's patternedRecurrence as RRULE lines; raises HTTPError when it is not valid."""

    def bad(message: str) -> HTTPError:
        return HTTPError(400, "ErrorInvalidRequest", f"Invalid recurrence: {message}")

    if not isinstance(value, dict) or not isinstance(value.get("pattern"), dict):
        raise bad("a pattern is required.")
    pattern, range_ = value["pattern"], value.get("range") or {}
    kind = str(pattern.get("type", ""))
    try:
        interval = int(pattern.get("interval") or 1)
    except (TypeError, ValueError):
        raise bad("interval must be a number.") from None
    days = pattern.get("daysOfWeek") or []
    if not isinstance(days, list) or any(str(d).lower() not in _DAY_NAMES for d in days):
        raise bad("daysOfWeek must list day names.")
    byday = ",".join(_RRULE_DAYS[_DAY_NAMES.index(str(d).lower())] for d in days)
    index = {v: k for k, v in _INDEX_NAMES.items()}.get(str(pattern.get("index") or "first"))
    parts = []
    if kind == "daily":
        parts.append("FREQ=DAILY")
    elif kind == "weekly":
        if not byday:
            raise bad("a weekly pattern needs daysOfWeek.")
        parts += ["FREQ=WEEKLY", f"BYDAY={byday}"]
        first = str(pattern.get("firstDayOfWeek") or "sunday").lower()
        if first in _DAY_NAMES:
            parts.append(f"WKST={_RRULE_DAYS[_DAY_NAMES.index(first)]}")
    elif kind in {"absoluteMonthly", "absoluteYearly"}:
        parts.append("FREQ=MONTHLY" if kind == "absoluteMonthly" else "FREQ=YEARLY")
        if kind == "absoluteYearly":
            parts.append(f"BYMONTH={int(pattern.get('month') or 1)}")
        parts.append(f"BYMONTHDAY={int(pattern.get('dayOfMonth') or 1)}")
    elif kind in {"relativeMonthly", "relativeYearly"}:
        if not byday or index is None:
            raise bad("a relative pattern needs daysOfWeek and index.")
        parts.append("FREQ=MONTHLY" if kind == "relativeMonthly" else "FREQ=YEARLY")
        if kind == "relativeYearly":
            parts.append(f"BYMONTH={int(pattern.get('month') or 1)}")
        parts += [f"BYDAY={byday}", f"BYSETPOS={index}"]
    else:
        raise bad(f"unknown pattern type {kind!r}.")
    if interval != 1:
        parts.append(f"INTERVAL={interval}")
    range_type = str(range_.get("type") or "noEnd")
    if range_type == "numbered":
        count = int(range_.get("numberOfOccurrences") or 0)
        if count < 1:
            raise bad("numberOfOccurrences must be positive.")
        parts.append(f"COUNT={count}")
    elif range_type == "endDate":
        try:
            end = date.fromisoformat(str(range_.get("endDate")))
        except ValueError:
            raise bad("endDate must be a date.") from None
        parts.append(f"UNTIL={end:%Y%m%d}T235959")
    elif range_type != "noEnd":
        raise bad(f"unknown range type {range_type!r}.")
    return ["RRULE:" + ";".join(parts)]


# --- state -----------------------------------------------------------------------------------


@dataclass
class _Tenant:
    kind: str  # common, organizations, consumers, tenant
    id: str = ""  # the tenant id for kind "tenant"

    @property
    def segment(self) -> str:
        return self.id if self.kind == "tenant" else self.kind

    def allows(self, account: Account) -> bool:
        if account.provider != MICROSOFT:
            return False
        if self.kind == "common":
            return True
        if self.kind == "organizations":
            return account.tenant_id != CONSUMERS_TENANT_ID
        if self.kind == "consumers":
            return account.tenant_id == CONSUMERS_TENANT_ID
        return account.tenant_id == self.id


@dataclass
class _AuthRequest:
    tenant: _Tenant
    client_id: str
    redirect_uri: str
    response_mode: str
    state: str | None
    nonce: str | None
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str
    client_info: bool
    login_hint: str | None
    created: float = field(default_factory=time.time)


@dataclass
class _Grant:
    id: str
    email: str
    client_id: str
    scopes: set[str]
    created: datetime = field(default_factory=utcnow)
    revoked: bool = False


@dataclass
class _Code:
    grant_id: str
    email: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    expires: float
    used: bool = False


@dataclass
class _RefreshToken:
    grant_id: str
    email: str
    client_id: str
    expires: float
    issued: datetime = field(default_factory=utcnow)


@dataclass
class _AccessToken:
    grant_id: str
    email: str
    client_id: str
    scopes: frozenset[str]
    expires: float


@dataclass
class _Slot:
    """One request being handled for a mailbox (Outlook's 4-concurrent-requests limit)."""

    email: str
    throttled: bool
    started: float = field(default_factory=time.monotonic)
    claimed: bool = False


@dataclass
class _Subscription:
    id: str
    email: str
    client_id: str
    calendar_id: str | None  # None: every calendar of the mailbox (me/events)
    resource: str
    change_types: list[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.client_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": _stamp(self.expires),
            "creatorId": "",
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclass
class _View:
    """How a Graph response renders events: time zone, body type, $select, $expand."""

    base: str
    zone_name: str = "UTC"
    zone: tzinfo = UTC
    text_body: bool = False
    page_size: int | None = None
    select: set[str] | None = None
    expand_ids: list[str] | None = None
    applied: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        return {"Preference-Applied": ", ".join(self.applied)} if self.applied else {}


EVENT_PROPERTIES = {
    "allowNewTimeProposals",
    "attendees",
    "body",
    "bodyPreview",
    "categories",
    "changeKey",
    "createdDateTime",
    "end",
    "hasAttachments",
    "hideAttendees",
    "iCalUId",
    "id",
    "importance",
    "isAllDay",
    "isCancelled",
    "isDraft",
    "isOnlineMeeting",
    "isOrganizer",
    "isReminderOn",
    "lastModifiedDateTime",
    "location",
    "locations",
    "onlineMeeting",
    "onlineMeetingProvider",
    "onlineMeetingUrl",
    "organizer",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "recurrence",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "responseStatus",
    "sensitivity",
    "seriesMasterId",
    "showAs",
    "start",
    "subject",
    "transactionId",
    "type",
    "webLink",
    "occurrenceId",
    "singleValueExtendedProperties",
    "multiValueExtendedProperties",
    "attachments",
    "calendar",
    "extensions",
    "instances",
}
# Properties a client may send when creating or updating an event; others are refused.
WRITABLE_EXTRAS = (
    "attendees",
    "categories",
    "importance",
    "sensitivity",
    "showAs",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
    "locations",
    "isDraft",
)


class _OAuthError(HTTPError):
    def __init__(self, status: int, error: str, description: str, suberror: str = "") -> None:
        super().__init__(status, error, description)
        self.suberror = suberror


class MicrosoftSandbox:
    """Identity platform + Graph state: grants and tokens, subscriptions, in-flight requests."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self._lock = threading.RLock()
        self._local = threading.local()
        self._signing_key: rsa.RSAPrivateKey | None = None
        self._kid = ""
        self._pending: dict[str, _AuthRequest] = {}
        self._grants: dict[str, _Grant] = {}
        self._codes: dict[str, _Code] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._spent_refresh_tokens: OrderedDict[str, str] = OrderedDict()  # token -> why
        self._access_tokens: dict[str, _AccessToken] = {}
        self._inflight: dict[str, list[_Slot]] = {}
        self._transactions: dict[tuple[str, str], tuple[str, str]] = {}
        self._delta_key = secrets.token_bytes(32)
        self._subscriptions: dict[str, _Subscription] = {}
        self._queue: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stopping = False
        # Ids that exist already: a change to one of them is "updated", to any other "created".
        self._known_ids: set[str] = set()
        with self.store.lock:
            for account in self.store.accounts_of(MICROSOFT):
                for calendar in account.calendars.values():
                    self._known_ids.update(calendar.events)
        # The last notification POSTs, for tests and the inspection page.
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=500)

        self.identity = Router(errors=self._oauth_error)
        self.pages = Router(errors=self._html_error)
        self.graph = Router(errors=self._graph_error)
        self.control = Router()
        self._install_identity()
        self._install_graph()
        self._install_control()
        self.store.on_change(self._on_change)

    @property
    def routers(self) -> list[Router]:
        return [self.control, self.identity, self.pages, self.graph]

    # --- the interface the core and the control API use ------------------------------------

    def revoke_account(self, account: Account) -> None:
        """Every grant of `account` is revoked: its refresh tokens give invalid_grant."""
        with self._lock:
            for grant in self._grants.values():
                if grant.email == account.email:
                    grant.revoked = True
            for token, record in list(self._refresh_tokens.items()):
                if record.email == account.email:
                    del self._refresh_tokens[token]
                    self._spend(token, "revoked")
            for record in self._access_tokens.values():
                if record.email == account.email:
                    record.expires = 0

    def issued_tokens(self) -> set[str]:
        """Every access and refresh token handed out, for tests that look for leaks."""
        with self._lock:
            return (
                set(self._access_tokens)
                | set(self._refresh_tokens)
                | set(self._spent_refresh_tokens)
            )

    def expire_access_tokens(self, account: Account) -> None:
        """Every access token of `account` is refused from now on (401)."""
        with self._lock:
            for record in self._access_tokens.values():
                if record.email == account.email:
                    record.expires = 0

    def stop(self) -> None:
        """Stops background work (push notifications)."""
        self._stopping = True
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._queue.put(None)
            worker.join(timeout=2)

    def subscriptions(self) -> list[_Subscription]:
        with self._lock:
            return list(self._subscriptions.values())

    def send_lifecycle_notification(self, subscription_id: str, lifecycle_event: str) -> None:
        """Queue a lifecycle notification (reauthorizationRequired, subscriptionRemoved, missed).

        https://learn.microsoft.com/graph/change-notifications-lifecycle-events
        Raises KeyError for an unknown subscription, ValueError for an unknown event or a
        subscription without a lifecycleNotificationUrl.
        """
        if lifecycle_event not in LIFECYCLE_EVENTS:
            raise ValueError(f"unknown lifecycle event {lifecycle_event!r}")
        with self._lock:
            subscription = self._subscriptions[subscription_id]
            if not subscription.lifecycle_url:
                raise ValueError("the subscription has no lifecycleNotificationUrl")
            if lifecycle_event == "subscriptionRemoved":
                del self._subscriptions[subscription_id]
        account = self.store.account(subscription.email)
        item = {
            "lifecycleEvent": lifecycle_event,
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": _stamp(subscription.expires),
            "clientState": subscription.client_state,
            "tenantId": account.tenant_id if account else "",
            "resource": subscription.resource,
        }
        self._enqueue("lifecycle", subscription.lifecycle_url, item)

    def reauthorization_required(self, subscription_id: str) -> None:
        self.send_lifecycle_notification(subscription_id, "reauthorizationRequired")

    def subscription_removed(self, subscription_id: str) -> None:
        self.send_lifecycle_notification(subscription_id, "subscriptionRemoved")

    def missed(self, subscription_id: str) -> None:
        self.send_lifecycle_notification(subscription_id, "missed")

    # --- keys and tokens ----------------------------------------------------------------------

    def _key(self) -> rsa.RSAPrivateKey:
        # Made on first use: most sandboxes never sign an id_token.
        with self._lock:
            if self._signing_key is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                der = key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - a key id, not security
                digest.update(der)
                self._kid = _b64url(digest.finalize())
                self._signing_key = key
            return self._signing_key

    def _spend(self, token: str, why: str) -> None:
        self._spent_refresh_tokens[token] = why
        while len(self._spent_refresh_tokens) > SPENT_TOKENS_KEPT:
            self._spent_refresh_tokens.popitem(last=False)

    def _issuer(self, tenant_id: str) -> str:
        return f"{self.sandbox.https_url}/{tenant_id}/v2.0"

    def _id_token(
        self, account: Account, client_id: str, scopes: Iterable[str], nonce: str | None
    ) -> str:
        key = self._key()
        now = int(time.time())
        subject = _b64url(hashlib.sha256(f"{account.uid}:{client_id}".encode()).digest())
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": self._issuer(account.tenant_id),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": account.name,
            "oid": account.uid,
            "preferred_username": account.email,
            "sub": subject,
            "tid": account.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if "email" in scopes:
            claims["email"] = account.email
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self._kid})

    def _issue(
        self,
        grant: _Grant,
        requested: list[str],
        *,
        nonce: str | None,
        client_info: bool,
    ) -> dict[str, Any]:
        account = self.store.account(grant.email)
        if account is None:
            raise _invalid_grant(50034)
        options = self.sandbox.options
        graph = [s for s in requested if s not in OIDC_SCOPES] or sorted(grant.scopes)
        now = time.time()
        access = "EwB" + secrets.token_urlsafe(96)
        response: dict[str, Any] = {
            "token_type": "Bearer",
            # Entra ID answers with short Graph scope names and never lists offline_access.
            "scope": " ".join(
                [*graph, *(s for s in ("openid", "profile", "email") if s in requested)]
            ),
            "expires_in": options.access_token_lifetime,
            "ext_expires_in": options.access_token_lifetime,
            "access_token": access,
        }
        with self._lock:
            self._access_tokens[access] = _AccessToken(
                grant.id,
                grant.email,
                grant.client_id,
                frozenset(graph),
                now + options.access_token_lifetime,
            )
            if "offline_access" in requested:
                refresh = "M.C5" + secrets.token_urlsafe(160)
                self._refresh_tokens[refresh] = _RefreshToken(
                    grant.id, grant.email, grant.client_id, now + options.refresh_token_lifetime
                )
                response["refresh_token"] = refresh
        if "openid" in requested:
            response["id_token"] = self._id_token(account, grant.client_id, requested, nonce)
        if client_info:
            response["client_info"] = _client_info(account)
        return response

    # --- tenants and scopes -------------------------------------------------------------------

    def _tenant(self, segment: str) -> _Tenant | None:
        low = unquote(segment).lower()
        if low in {"common", "organizations", "consumers"}:
            return _Tenant(low)
        accounts = self.store.accounts_of(MICROSOFT)
        ids = {a.tenant_id.lower() for a in accounts}
        if low in ids:
            return _Tenant("tenant", low)
        domains = {
            a.email.rsplit("@", 1)[1].lower(): a.tenant_id
            for a in accounts
            if a.tenant_id != CONSUMERS_TENANT_ID
        }
        if low in domains:
            return _Tenant("tenant", domains[low])
        return None

    @staticmethod
    def _scopes(raw: str) -> tuple[list[str], list[str]]:
        """(known scopes in Entra ID's short form, in order, without repeats; unknown ones)."""
        known: list[str] = []
        unknown: list[str] = []
        for item in raw.split():
            name = item
            if item.lower().startswith(GRAPH_RESOURCE):
                name = item[len(GRAPH_RESOURCE) :]
            elif "://" in item or item.lower().startswith("api:"):
                unknown.append(item)
                continue
            if name.lower() == ".default":
                known.extend(DEFAULT_APP_SCOPES)
            elif name.lower() in OIDC_SCOPES:
                known.append(name.lower())
            elif name.lower() in GRAPH_SCOPES:
                known.append(GRAPH_SCOPES[name.lower()])
            else:
                unknown.append(item)
        return list(dict.fromkeys(known)), unknown

    # --- error shapes -------------------------------------------------------------------------

    def _oauth_error(self, error: HTTPError) -> Response:
        status, code, description = error.status, error.reason, error.message
        headers = dict(error.headers)
        if code in {"rateLimitExceeded", "quotaExceeded"}:
            status, code = 429, "temporarily_unavailable"
            description = aadsts(90055)
            headers.setdefault("Retry-After", "1")
        elif code == "backendError":
            code = "server_error" if status == 500 else "temporarily_unavailable"
            description = aadsts(90033)
        elif code == "authError":
            status, code = 401, "invalid_client"
            description = aadsts(7000215, client="")
        elif code in {"notFound", "badRequest", "methodNotAllowed"}:
            code = "invalid_request"
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        codes = [int(c) for c in re.findall(r"AADSTS(\d+)", description)[:1]]
        body: dict[str, Any] = {
            "error": code,
            "error_description": f"{description} Trace ID: {trace} "
            f"Correlation ID: {correlation} Timestamp: {stamp}",
            "error_codes": codes,
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
        }
        if codes:
            body["error_uri"] = f"{self.sandbox.https_url}/error?code={codes[0]}"
        suberror = getattr(error, "suberror", "")
        if suberror:
            body["suberror"] = suberror
        response = Response.json(body, status)
        response.headers.update(headers)
        response.headers["Cache-Control"] = "no-store, no-cache"
        return response

    def _html_error(self, error: HTTPError) -> Response:
        if error.reason in {"rateLimitExceeded", "quotaExceeded", "backendError", "authError"}:
            message = aadsts(90033)
        else:
            message = error.message
        page = _page(
            "Sign in to your account",
            "<h1>Sorry, but we’re having trouble signing you in.</h1>"
            f'<p id="error-message" role="alert">{html.escape(message)}</p>',
        )
        response = Response.html(page, error.status)
        response.headers.update(error.headers)
        return response

    def _graph_error(self, error: HTTPError) -> Response:
        self._release_unclaimed_slot()
        status, code, message = error.status, error.reason, error.message
        headers = dict(error.headers)
        if code == "rateLimitExceeded":
            # Graph throttles with 429 only; a 403 rate limit is Google's.
            status, code, message = 429, "TooManyRequests", "Too many requests."
        elif code == "quotaExceeded":
            # Graph has no daily quota: an exhausted per-mailbox budget (10,000 requests per
            # 10 minutes) is a 429 like any throttling, with a longer wait.
            status, code = 429, "TooManyRequests"
            message = "Application is over its request quota for this mailbox."
            headers.setdefault("Retry-After", "60")
        elif code == "backendError":
            if status == 503:
                code = "serviceNotAvailable"
                message = "The service is temporarily unavailable. Please retry later."
            else:
                code, message = "generalException", "General exception while processing."
        elif code == "authError":
            code = "InvalidAuthenticationToken"
            message = "Access token has expired or is not yet valid."
        if status == 401:
            headers.setdefault(
                "WWW-Authenticate",
                f'Bearer realm="", authorization_uri="{self.sandbox.https_url}/common/oauth2/'
                'authorize", client_id="00000003-0000-0000-c000-000000000000"',
            )
        request_id = str(uuid.uuid4())
        current = getattr(self._local, "request", None)
        client_request_id = (current.headers.get("client-request-id") if current else None) or (
            request_id
        )
        body = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": _now_iso(),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        response = Response.json(body, status)
        response.headers.update(headers)
        response.headers.update({"request-id": request_id, "client-request-id": client_request_id})
        return response

    # --- identity platform ----------------------------------------------------------------------

    def _install_identity(self) -> None:
        identity, pages = self.identity, self.pages
        tenant_path = r"/(?P<tenant>[^/]+)"

        def tenant_or_error(request: Request) -> _Tenant:
            tenant = self._tenant(request.params["tenant"])
            if tenant is None:
                name = unquote(request.params["tenant"])
                raise _OAuthError(400, "invalid_tenant", aadsts(90002, tenant=name))
            return tenant

        @identity.route(
            "GET", tenant_path + r"/v2\.0/\.well-known/openid-configuration", "microsoft.openid"
        )
        def openid_configuration(request: Request) -> Response:
            """https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc"""
            tenant = tenant_or_error(request)
            https, plain, segment = self.sandbox.https_url, self.sandbox.http_url, tenant.segment
            issuer_tenant = {
                "common": "{tenantid}",
                "organizations": "{tenantid}",
                "consumers": CONSUMERS_TENANT_ID,
            }.get(tenant.kind, tenant.id)
            claims = "sub iss aud exp iat auth_time acr nonce preferred_username name tid ver"
            return Response.json(
                {
                    "token_endpoint": f"{https}/{segment}/oauth2/v2.0/token",
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_post",
                        "private_key_jwt",
                        "client_secret_basic",
                    ],
                    "jwks_uri": f"{https}/{segment}/discovery/v2.0/keys",
                    "response_modes_supported": sorted(_MODES),
                    "subject_types_supported": ["pairwise"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "response_types_supported": ["code", "id_token", "code id_token"],
                    "scopes_supported": ["openid", "profile", "email", "offline_access"],
                    "issuer": f"{https}/{issuer_tenant}/v2.0",
                    "request_uri_parameter_supported": False,
                    "userinfo_endpoint": f"{https}/oidc/userinfo",
                    # What a browser opens is on plain HTTP: no certificate to trust.
                    "authorization_endpoint": f"{plain}/{segment}/oauth2/v2.0/authorize",
                    "end_session_endpoint": f"{plain}/{segment}/oauth2/v2.0/logout",
                    "http_logout_supported": True,
                    "frontchannel_logout_supported": True,
                    "claims_supported": [*claims.split(), "email"],
                    "tenant_region_scope": "EU" if tenant.kind == "tenant" else None,
                    "cloud_instance_name": "microsoftonline.com",
                    "cloud_graph_host_name": "graph.windows.net",
                    "msgraph_host": urlsplit(https).netloc,
                    "rbac_url": "https://pas.windows.net",
                }
            )

        @identity.route("GET", tenant_path + r"/discovery/v2\.0/keys", "microsoft.keys")
        def keys(request: Request) -> Response:
            tenant_or_error(request)
            public = self._key().public_key().public_numbers()
            size = (public.n.bit_length() + 7) // 8
            key = {
                "kty": "RSA",
                "use": "sig",
                "kid": self._kid,
                "x5t": self._kid,
                "n": _b64url(public.n.to_bytes(size, "big")),
                "e": _b64url(public.e.to_bytes(3, "big")),
                "alg": "RS256",
                "issuer": f"{self.sandbox.https_url}/{{tenantid}}/v2.0",
            }
            return Response.json({"keys": [key]})

        @identity.route(
            "POST",
            tenant_path + r"/oauth2/v2\.0/token",
            "microsoft.token",
            identify=self._identify_token_request,
        )
        def token(request: Request) -> Response:
            """https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow"""
            tenant = tenant_or_error(request)
            form = request.form()
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            basic = request.headers.get("authorization", "")
            if basic.lower().startswith("basic "):  # RFC 6749 2.3.1, the other way to send it
                try:
                    raw = base64.b64decode(basic[6:].strip(), validate=True)
                    user, _, password = raw.decode().partition(":")
                    client_id, secret = unquote(user.replace("+", " ")), unquote(password)
                except (ValueError, UnicodeDecodeError):
                    pass
            if not client_id:
                raise _OAuthError(400, "invalid_request", aadsts(900144, name="client_id"))
            expected = self.sandbox.options.outlook_clients.get(client_id)
            if expected is None:
                text = aadsts(700016, client=client_id, tenant=tenant.segment)
                raise _OAuthError(400, "unauthorized_client", text)
            if not secret:
                raise _OAuthError(401, "invalid_client", aadsts(7000218))
            if not hmac.compare_digest(secret.encode(), expected.encode()):
                raise _OAuthError(401, "invalid_client", aadsts(7000215, client=client_id))
            grant_type = form.get("grant_type", "")
            client_info = form.get("client_info") == "1"
            if grant_type == "authorization_code":
                body = self._redeem_code(tenant, client_id, form, client_info)
            elif grant_type == "refresh_token":
                body = self._redeem_refresh_token(tenant, client_id, form, client_info)
            elif not grant_type:
                raise _OAuthError(400, "invalid_request", aadsts(900144, name="grant_type"))
            else:
                text = aadsts(70003, grant_type=grant_type)
                raise _OAuthError(400, "unsupported_grant_type", text)
            response = Response.json(body)
            response.headers["Cache-Control"] = "no-store, no-cache"
            return response

        authorize_path = tenant_path + r"/oauth2/v2\.0/authorize"

        @pages.route("GET", authorize_path, "microsoft.authorize")
        def authorize(request: Request) -> Response:
            return self._authorize(request)

        @pages.route("POST", authorize_path, "microsoft.authorize")
        def consent(request: Request) -> Response:
            return self._consent(request)

        @pages.route("GET", tenant_path + r"/oauth2/v2\.0/logout", "microsoft.logout")
        def logout(request: Request) -> Response:
            target = request.arg("post_logout_redirect_uri")
            if target and urlsplit(target).scheme in {"http", "https"}:
                return Response.redirect(target)
            return Response.html(_page("Signed out", "<h1>You signed out of your account</h1>"))

    def _identify_token_request(self, request: Request) -> Account | None:
        try:
            form = request.form()
            with self._lock:
                record: Any = None
                if form.get("refresh_token"):
                    record = self._refresh_tokens.get(form["refresh_token"])
                elif form.get("code"):
                    record = self._codes.get(form["code"])
            return self.store.account(record.email) if record is not None else None
        except Exception:  # identify must never raise
            return None

    def _redeem_code(
        self, tenant: _Tenant, client_id: str, form: dict[str, str], client_info: bool
    ) -> dict[str, Any]:
        code = form.get("code", "")
        if not code:
            raise _OAuthError(400, "invalid_request", aadsts(900144, name="code"))
        with self._lock:
            record = self._codes.get(code)
            if record is None:
                raise _invalid_grant(9002313)
            if record.used:
                raise _invalid_grant(54005)
            record.used = True  # single use, whatever happens next
            grant = self._grants.get(record.grant_id)
        if record.expires < time.time():
            raise _invalid_grant(70008)
        if record.client_id != client_id:
            raise _invalid_grant(70000, parameter="code", why="it was issued to another app.")
        redirect_uri = form.get("redirect_uri", "")
        if redirect_uri != record.redirect_uri:
            raise _invalid_grant(500112, given=redirect_uri, expected=record.redirect_uri)
        if record.code_challenge:
            verifier = form.get("code_verifier", "")
            if not verifier:
                raise _invalid_grant(50148)
            computed = (
                _b64url(hashlib.sha256(verifier.encode()).digest())
                if record.code_challenge_method == "S256"
                else verifier
            )
            if not hmac.compare_digest(computed.encode(), record.code_challenge.encode()):
                raise _invalid_grant(501481)
        account = self.store.account(record.email)
        if account is None or not tenant.allows(account):
            raise _invalid_grant(50020, email=record.email, tenant=tenant.segment)
        if grant is None or grant.revoked:
            raise _invalid_grant(50173, issued=_issued(grant))
        return self._issue(grant, record.scopes, nonce=record.nonce, client_info=client_info)

    def _redeem_refresh_token(
        self, tenant: _Tenant, client_id: str, form: dict[str, str], client_info: bool
    ) -> dict[str, Any]:
        token = form.get("refresh_token", "")
        if not token:
            raise _OAuthError(400, "invalid_request", aadsts(900144, name="refresh_token"))
        requested, unknown = self._scopes(form.get("scope", ""))
        if unknown:
            raise _OAuthError(400, "invalid_scope", aadsts(70011, scope=" ".join(unknown)))
        with self._lock:
            record = self._refresh_tokens.get(token)
            if record is None:
                why = self._spent_refresh_tokens.get(token)
                if why == "revoked":
                    raise _invalid_grant(50173, issued="")
                if why == "rotated":
                    raise _invalid_grant(70000, parameter="refresh_token", why=ROTATED)
                if why == "expired":
                    raise _invalid_grant(700082, issued="")
                raise _invalid_grant(9002313)
            grant = self._grants.get(record.grant_id)
            if record.client_id != client_id:
                why = "it was issued to another app."
                raise _invalid_grant(70000, parameter="refresh_token", why=why)
            if record.expires < time.time():
                del self._refresh_tokens[token]
                self._spend(token, "expired")
                raise _invalid_grant(700082, issued=f" It was issued on {record.issued:%Y-%m-%d}.")
            if grant is None or grant.revoked:
                raise _invalid_grant(50173, issued=_issued(grant))
            account = self.store.account(record.email)
            if account is None or not tenant.allows(account):
                raise _invalid_grant(50020, email=record.email, tenant=tenant.segment)
            if [s for s in requested if s not in OIDC_SCOPES and s not in grant.scopes]:
                text = aadsts(65001, client=client_id)
                raise _OAuthError(400, "invalid_grant", text, suberror="consent_required")
            # Rotation: the token just used is gone for good.
            del self._refresh_tokens[token]
            self._spend(token, "rotated")
        if not requested:
            requested = [*sorted(grant.scopes), "offline_access"]
        return self._issue(grant, requested, nonce=None, client_info=client_info)

    # --- the sign-in and consent pages ----------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        """The page a browser opens: https://learn.microsoft.com/entra/identity-platform/
        v2-oauth2-auth-code-flow#request-an-authorization-code"""
        tenant = self._tenant(request.params["tenant"])
        if tenant is None:
            name = unquote(request.params["tenant"])
            raise HTTPError(400, "invalid_tenant", aadsts(90002, tenant=name))
        client_id = request.arg("client_id") or ""
        if not client_id:
            raise HTTPError(400, "invalid_request", aadsts(900144, name="client_id"))
        if client_id not in self.sandbox.options.outlook_clients:
            text = aadsts(700016, client=client_id, tenant=tenant.segment)
            raise HTTPError(400, "unauthorized_client", text)
        redirect_uri = request.arg("redirect_uri") or ""
        parts = urlsplit(redirect_uri)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.fragment:
            raise HTTPError(
                400, "invalid_request", aadsts(50011, uri=redirect_uri, client=client_id)
            )
        mode = request.arg("response_mode") or "query"
        state = request.arg("state")

        def refuse(error: str, description: str) -> Response:
            params = {"error": error, "error_description": description, "state": state}
            return _redirect_result(redirect_uri, mode if mode in _MODES else "query", params)

        if mode not in _MODES:
            return refuse("invalid_request", aadsts(900144, name="response_mode"))
        response_type = request.arg("response_type") or ""
        if response_type != "code":
            text = aadsts(700054, response_type=response_type)
            return refuse("unsupported_response_type", text)
        scopes, unknown = self._scopes(request.arg("scope") or "")
        if not scopes and not unknown:
            return refuse("invalid_request", aadsts(900144, name="scope"))
        if unknown:
            return refuse("invalid_scope", aadsts(70011, scope=" ".join(unknown)))
        challenge = request.arg("code_challenge")
        method = request.arg("code_challenge_method") or "plain"
        if challenge is not None and method not in {"S256", "plain"}:
            return refuse("invalid_request", aadsts(900144, name="code_challenge_method"))
        if challenge is not None and not 43 <= len(challenge) <= 128:
            return refuse("invalid_request", aadsts(501491))
        if request.arg("prompt") == "none":  # the sandbox keeps no sign-in session
            return refuse("login_required", aadsts(50058))
        pending = _AuthRequest(
            tenant=tenant,
            client_id=client_id,
            redirect_uri=redirect_uri,
            response_mode=mode,
            state=state,
            nonce=request.arg("nonce"),
            scopes=scopes,
            code_challenge=challenge,
            code_challenge_method=method,
            client_info=request.arg("client_info") == "1",
            login_hint=(request.arg("login_hint") or "").lower() or None,
        )
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            now = time.time()
            for key in [k for k, v in self._pending.items() if v.created < now - PENDING_LIFETIME]:
                del self._pending[key]
            self._pending[request_id] = pending
        accounts = [a for a in self.store.accounts_of(MICROSOFT) if tenant.allows(a)]
        return Response.html(_consent_page(request.path, request_id, pending, accounts))

    def _consent(self, request: Request) -> Response:
        """The consent form, posted: back to the app with a code, or with access_denied."""
        form = request.form()
        with self._lock:
            pending = self._pending.pop(form.get("request", ""), None)
        if pending is None or pending.created < time.time() - PENDING_LIFETIME:
            raise HTTPError(400, "invalid_request", aadsts(90014))
        redirect, mode = pending.redirect_uri, pending.response_mode
        action = form.get("action")
        if action == "cancel":
            refusal = {"error": "access_denied", "error_description": aadsts(65004)}
            return _redirect_result(redirect, mode, {**refusal, "state": pending.state})
        if action != "accept":
            raise HTTPError(400, "invalid_request", "Choose Accept or Cancel.")
        email = form.get("account", "")
        account = self.store.account(email) if email else None
        if account is None or not pending.tenant.allows(account):
            text = aadsts(50020, email=email, tenant=pending.tenant.segment)
            raise HTTPError(400, "invalid_request", text)
        graph_scopes = {s for s in pending.scopes if s not in OIDC_SCOPES}
        with self._lock:
            grant = next(
                (
                    g
                    for g in self._grants.values()
                    if g.email == account.email and g.client_id == pending.client_id
                    if not g.revoked
                ),
                None,
            )
            if grant is None:
                grant = _Grant(str(uuid.uuid4()), account.email, pending.client_id, set())
                self._grants[grant.id] = grant
            grant.scopes |= graph_scopes  # consent adds up, as in Entra ID
            code = "1.A" + secrets.token_urlsafe(96)
            self._codes[code] = _Code(
                grant_id=grant.id,
                email=account.email,
                client_id=pending.client_id,
                redirect_uri=pending.redirect_uri,
                scopes=pending.scopes,
                nonce=pending.nonce,
                code_challenge=pending.code_challenge,
                code_challenge_method=pending.code_challenge_method,
                expires=time.time() + self.sandbox.options.code_lifetime,
            )
        params: dict[str, str | None] = {"code": code}
        if pending.client_info:
            params["client_info"] = _client_info(account)
        params["state"] = pending.state
        params["session_state"] = str(uuid.uuid4())
        return _redirect_result(redirect, mode, params)

    # --- Graph: authentication, concurrency, rendering -------------------------------------------

    def _identify(self, request: Request, *, counted: bool) -> Account | None:
        try:
            self._local.request = request
            token = request.bearer()
            if not token:
                return None
            with self._lock:
                record = self._access_tokens.get(token)
                if record is None:
                    return None
                account = self.store.account(record.email)
                if account is None or not counted or record.expires <= time.time():
                    return account
                slots = self._inflight.setdefault(record.email, [])
                now = time.monotonic()
                # A slot left behind by a crashed request must not throttle a mailbox forever.
                slots[:] = [s for s in slots if now - s.started < 300]
                slot = _Slot(record.email, throttled=len(slots) >= MAILBOX_CONCURRENCY)
                if not slot.throttled:
                    slots.append(slot)
            request._ms_slot = slot  # type: ignore[attr-defined]
            stack = self._local.__dict__.setdefault("slots", [])
            stack.append(slot)
            return account
        except Exception:  # identify must never raise
            return None

    def _release(self, slot: _Slot | None) -> None:
        if slot is None:
            return
        stack = self._local.__dict__.get("slots", [])
        if slot in stack:
            stack.remove(slot)
        with self._lock:
            slots = self._inflight.get(slot.email, [])
            if slot in slots:
                slots.remove(slot)

    def _release_unclaimed_slot(self) -> None:
        # The core answered from a fault rule without calling the handler: free the slot that
        # `_identify` took for this request.
        stack = self._local.__dict__.get("slots", [])
        if stack and not stack[-1].claimed:
            self._release(stack[-1])

    def _authenticate(self, request: Request) -> tuple[Account, _AccessToken]:
        token = request.bearer()
        if not token:
            raise HTTPError(401, "InvalidAuthenticationToken", "Access token is empty.")
        with self._lock:
            record = self._access_tokens.get(token)
        if record is None:
            raise HTTPError(
                401,
                "InvalidAuthenticationToken",
                "CompactToken parsing failed with error code: 80049217",
            )
        if record.expires <= time.time():
            raise HTTPError(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        account = self.store.account(record.email)
        if account is None:
            raise HTTPError(401, "InvalidAuthenticationToken", "The user does not exist.")
        return account, record

    def _graph_route(
        self,
        method: str,
        paths: list[str],
        endpoint: str,
        *,
        needs: set[str] | None = None,
        counted: bool = True,
    ) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
        """Register `handler(request, account, token)` on each path, behind Graph's checks."""

        def register(handler: Callable[..., Response]) -> Callable[..., Response]:
            def wrapper(request: Request) -> Response:
                slot: _Slot | None = getattr(request, "_ms_slot", None)
                if slot is not None:
                    slot.claimed = True
                try:
                    account, token = self._authenticate(request)
                    if needs is not None and not (token.scopes & needs):
                        if needs is USER_SCOPES:
                            raise HTTPError(
                                403,
                                "Authorization_RequestDenied",
                                "Insufficient privileges to complete the operation.",
                            )
                        raise _denied()
                    if slot is not None and slot.throttled:
                        self.sandbox.counters["graph.throttled.mailbox_concurrency"] += 1
                        raise HTTPError(
                            429,
                            "ApplicationThrottled",
                            "Application is over its MailboxConcurrency limit.",
                            headers={"Retry-After": "1"},
                        )
                    response = handler(request, account, token)
                    request_id = str(uuid.uuid4())
                    response.headers.setdefault("request-id", request_id)
                    response.headers.setdefault(
                        "client-request-id", request.headers.get("client-request-id", request_id)
                    )
                    return response
                finally:
                    self._release(slot)

            def identify(request: Request) -> Account | None:
                return self._identify(request, counted=counted)

            for path in paths:
                # Graph's paths are case-insensitive (/me/calendarview is common).
                self.graph.route(method, f"(?i:{path})", endpoint, identify=identify)(wrapper)
            return handler

        return register

    def _view(self, request: Request, *, select: bool = True, expand: bool = True) -> _View:
        view = _View(base=request.base_url)
        prefer = request.headers.get("prefer", "")
        for match in re.finditer(r'([\w.\-]+)\s*=\s*(?:"([^"]*)"|([^,;\s]+))', prefer):
            name, value = match[1].lower(), match[2] if match[2] is not None else match[3]
            if name == "outlook.timezone":
                iana = iana_zone(value)
                if iana is None:
                    raise HTTPError(
                        400,
                        "TimeZoneNotSupportedException",
                        "A valid TimeZone "
                        "value must be specified. The following TimeZone value is "
                        f"not supported: '{value}'.",
                    )
                view.zone_name, view.zone = value, _tz(iana)
                view.applied.append(f'outlook.timezone="{value}"')
            elif name == "outlook.body-content-type" and value.lower() in {"text", "html"}:
                view.text_body = value.lower() == "text"
                view.applied.append(f'outlook.body-content-type="{value.lower()}"')
            elif name == "odata.maxpagesize" and value.isdigit() and int(value) > 0:
                view.page_size = min(int(value), MAX_PAGE_SIZE)
                view.applied.append(f"odata.maxpagesize={view.page_size}")
        fields = _odata(request, "select")
        if fields:
            if not select:
                raise _not_in_delta("select")
            names = {f.strip() for f in fields.split(",") if f.strip()}
            unknown = names - EVENT_PROPERTIES
            if unknown:
                raise HTTPError(
                    400,
                    "RequestBroker--ParseUri",
                    f"Could not find a property "
                    f"named '{sorted(unknown)[0]}' on type "
                    "'Microsoft.OutlookServices.Event'.",
                )
            view.select = names
        expansion = _odata(request, "expand")
        if expansion:
            if not expand:
                raise _not_in_delta("expand")
            view.expand_ids = _parse_expand(expansion)
        return view

    def _event_json(self, account: Account, event: Event, view: _View) -> dict[str, Any]:
        extra = event.extra.get("graph")
        graph: dict[str, Any] = extra if isinstance(extra, dict) else {}
        if event.all_day:
            # Graph gives all-day events as midnight to midnight in the zone asked for.
            start = {
                "dateTime": f"{event.start.isoformat()}T00:00:00.0000000",
                "timeZone": view.zone_name,
            }
            end = {
                "dateTime": f"{event.end.isoformat()}T00:00:00.0000000",
                "timeZone": view.zone_name,
            }
        else:
            start = {
                "dateTime": _graph_dt(event.start_utc().astimezone(view.zone)),
                "timeZone": view.zone_name,
            }
            end = {
                "dateTime": _graph_dt(event.end_utc().astimezone(view.zone)),
                "timeZone": view.zone_name,
            }
        if event.is_master:
            kind = "seriesMaster"
        elif event.is_occurrence:
            kind = "exception" if event.is_exception else "occurrence"
        else:
            kind = "singleInstance"
        description = event.description or ""
        body_type = graph.get("bodyType", "html" if _looks_like_html(description) else "text")
        content = description
        if body_type != "html":
            content = html.escape(description).replace("\n", "<br>\r\n")
        text = _html_to_text(content) if content else ""
        if view.text_body:
            body = {"contentType": "text", "content": text}
        else:
            wrapped = (
                '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; '
                f'charset=utf-8">\r\n</head>\r\n<body>\r\n{content}\r\n</body>\r\n</html>\r\n'
                if content
                else ""
            )
            body = {"contentType": "html", "content": wrapped}
        zone = windows_zone(event.time_zone)
        location = {
            "displayName": event.location,
            "locationType": "default",
            "uniqueIdType": "unknown",
            "address": {},
            "coordinates": {},
        }
        calendar = account.calendars.get(event.calendar_id)
        web_link = self.sandbox.http_url + (
            event_path(account, calendar, event) if calendar else ""
        )
        data: dict[str, Any] = {
            "@odata.etag": _etag(event),
            "id": event.id,
            "createdDateTime": _stamp(event.created),
            "lastModifiedDateTime": _stamp(event.updated),
            "changeKey": _change_key(event),
            "categories": graph.get("categories", []),
            "transactionId": event.transaction_id or None,
            "originalStartTimeZone": zone,
            "originalEndTimeZone": zone,
            "iCalUId": event.ical_uid,
            "reminderMinutesBeforeStart": graph.get(
                "reminderMinutesBeforeStart", 1080 if event.all_day else 15
            ),
            "isReminderOn": graph.get("isReminderOn", True),
            "hasAttachments": False,
            "subject": event.title,
            "bodyPreview": text[:255],
            "importance": graph.get("importance", "normal"),
            "sensitivity": graph.get("sensitivity", "normal"),
            "isAllDay": event.all_day,
            "isCancelled": event.status == "cancelled",
            "isOrganizer": True,
            "responseRequested": graph.get("responseRequested", True),
            "seriesMasterId": event.series_id or None,
            "showAs": graph.get("showAs", "free" if event.all_day else "busy"),
            "type": kind,
            "webLink": web_link,
            # Teams meetings leave this legacy field empty: the link is in onlineMeeting.
            "onlineMeetingUrl": None,
            "isOnlineMeeting": bool(event.online_url),
            "onlineMeetingProvider": "teamsForBusiness" if event.online_url else "unknown",
            "allowNewTimeProposals": graph.get("allowNewTimeProposals", True),
            "occurrenceId": None,
            "isDraft": graph.get("isDraft", False),
            "hideAttendees": graph.get("hideAttendees", False),
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "body": body,
            "start": start,
            "end": end,
            "location": location,
            "locations": graph.get("locations")
            or (
                [
                    {
                        "displayName": event.location,
                        "locationType": "default",
                        "uniqueIdType": "unknown",
                    }
                ]
                if event.location
                else []
            ),
            "recurrence": recurrence_json(event) if event.is_master else None,
            "attendees": graph.get("attendees", []),
            "organizer": {"emailAddress": {"name": account.name, "address": account.email}},
            "onlineMeeting": {"joinUrl": event.online_url} if event.online_url else None,
        }
        if event.is_occurrence and event.original_start is not None:
            data["originalStart"] = _stamp(as_utc(event.original_start, event.time_zone))
        if view.expand_ids is not None:
            found = [
                {"id": key, "value": value}
                for key, value in event.private_properties.items()
                if key in view.expand_ids
            ]
            if found:  # Graph leaves the collection out when nothing matches
                data["singleValueExtendedProperties"] = found
        if view.select is not None:
            keep = view.select | {"id", "@odata.etag"}
            if view.expand_ids is not None:
                keep.add("singleValueExtendedProperties")
            data = {k: v for k, v in data.items() if k in keep}
        return data

    @staticmethod
    def _calendar_json(account: Account, calendar: Calendar) -> dict[str, Any]:
        color = {"#0b5cad": "lightBlue", "#2e7d32": "lightGreen", "#a1261c": "lightRed"}
        digest = hashlib.sha256(f"{calendar.id}:{calendar.name}:{calendar.can_edit}".encode())
        work = account.tenant_id != CONSUMERS_TENANT_ID
        provider = "teamsForBusiness" if work else "skypeForConsumer"
        return {
            "id": calendar.id,
            "name": calendar.name,
            "color": color.get(calendar.color.lower(), "auto"),
            "hexColor": calendar.color,
            "isDefaultCalendar": calendar.primary,
            "changeKey": base64.b64encode(digest.digest()[:22]).decode(),
            "canShare": calendar.primary,
            "canViewPrivateItems": calendar.primary,
            "canEdit": calendar.can_edit,
            "allowedOnlineMeetingProviders": [provider],
            "defaultOnlineMeetingProvider": provider if calendar.can_edit else "none",
            "isTallyingResponses": calendar.can_edit,
            "isRemovable": not calendar.primary,
            "owner": {"name": account.name, "address": account.email},
        }

    # --- Graph: lookups -------------------------------------------------------------------------

    @staticmethod
    def _calendar(account: Account, calendar_id: str | None) -> Calendar:
        if calendar_id is None:
            return account.primary
        calendar_id = unquote(calendar_id)
        if not calendar_id.startswith("AAMk"):
            raise HTTPError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        calendar = account.calendars.get(calendar_id)
        if calendar is None:
            raise _not_found()
        return calendar

    def _find_event(
        self, account: Account, calendar_id: str | None, event_id: str, *, any_calendar: bool
    ) -> tuple[Calendar, Event]:
        event_id = unquote(event_id)
        if not event_id.startswith("AAMk"):
            raise HTTPError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        calendars = (
            list(account.calendars.values())
            if any_calendar
            else [self._calendar(account, calendar_id)]
        )
        with self.store.lock:
            for calendar in calendars:
                event = calendar.events.get(event_id)
                if event is not None and not event.deleted and event.status != "cancelled":
                    return calendar, event
        raise _not_found()

    def _live(self, calendar: Calendar) -> list[Event]:
        with self.store.lock:
            events = list(calendar.events.values())
        return [e for e in events if not e.deleted and e.status != "cancelled"]

    # --- Graph: routes ----------------------------------------------------------------------------

    def _install_graph(self) -> None:
        route = self._graph_route
        me, cal = r"/v1\.0/me", r"(?:/calendars/(?P<calendar>[^/]+)|/calendar)"

        @route("GET", [me], "graph.me", needs=USER_SCOPES)
        def get_me(request: Request, account: Account, token: _AccessToken) -> Response:
            given, _, family = account.name.partition(" ")
            return Response.json(
                {
                    "@odata.context": f"{request.base_url}/v1.0/$metadata#users/$entity",
                    "businessPhones": [],
                    "displayName": account.name,
                    "givenName": given,
                    "jobTitle": None,
                    "mail": account.email,
                    "mobilePhone": None,
                    "officeLocation": None,
                    "preferredLanguage": "fr-FR",
                    "surname": family or None,
                    "userPrincipalName": account.email,
                    "id": account.uid,
                }
            )

        @route("GET", [me + r"/calendars"], "graph.calendars.list", needs=READ_SCOPES)
        def list_calendars(request: Request, account: Account, token: _AccessToken) -> Response:
            calendars = [self._calendar_json(account, c) for c in account.calendars.values()]
            context = f"{request.base_url}/v1.0/$metadata#users('{account.uid}')/calendars"
            return self._paged(request, _View(base=request.base_url), calendars, context)

        @route("GET", [me + cal], "graph.calendars.get", needs=READ_SCOPES)
        def get_calendar(request: Request, account: Account, token: _AccessToken) -> Response:
            calendar = self._calendar(account, request.params.get("calendar"))
            return Response.json(self._calendar_json(account, calendar))

        @route(
            "GET",
            [me + r"/calendarView", me + cal + r"/calendarView"],
            "graph.calendarView",
            needs=READ_SCOPES,
        )
        def calendar_view(request: Request, account: Account, token: _AccessToken) -> Response:
            calendar = self._calendar(account, request.params.get("calendar"))
            view = self._view(request)
            start, end = _window(request)
            events = [
                e
                for e in self._live(calendar)
                if not e.is_master and e.start_utc() < end and e.end_utc() > start
            ]
            events = self._filter_and_order(account, events, request)
            context = f"{request.base_url}/v1.0/$metadata#users('{account.uid}')/calendarView"
            return self._paged(request, view, events, context, account=account)

        @route(
            "GET",
            [me + r"/calendarView/delta", me + cal + r"/calendarView/delta"],
            "graph.delta",
            needs=READ_SCOPES,
        )
        def delta(request: Request, account: Account, token: _AccessToken) -> Response:
            calendar = self._calendar(account, request.params.get("calendar"))
            return self._delta(request, account, calendar)

        @route(
            "GET", [me + r"/events", me + cal + r"/events"], "graph.events.list", needs=READ_SCOPES
        )
        def list_events(request: Request, account: Account, token: _AccessToken) -> Response:
            calendar = self._calendar(account, request.params.get("calendar"))
            view = self._view(request)
            events = [e for e in self._live(calendar) if not e.is_occurrence]
            events = self._filter_and_order(account, events, request)
            context = f"{request.base_url}/v1.0/$metadata#users('{account.uid}')/events"
            return self._paged(request, view, events, context, account=account)

        @route(
            "POST",
            [me + r"/events", me + cal + r"/events"],
            "graph.events.create",
            needs=WRITE_SCOPES,
        )
        def create_event(request: Request, account: Account, token: _AccessToken) -> Response:
            calendar = self._calendar(account, request.params.get("calendar"))
            view = self._view(request, select=False, expand=False)
            event = self._create_event(account, calendar, _json_object(request))
            location = f"{request.base_url}/v1.0/Users('{account.uid}')/Events('{event.id}')"
            return Response.json(
                self._event_json(account, event, view),
                201,
                {"Location": location, **view.headers()},
            )

        one = [me + r"/events/(?P<event>[^/]+)", me + cal + r"/events/(?P<event>[^/]+)"]

        def lookup(request: Request, account: Account) -> tuple[Calendar, Event]:
            calendar_id = request.params.get("calendar")
            in_default = "calendar" not in request.params and "/me/calendar/" not in request.path
            return self._find_event(
                account,
                calendar_id,
                request.params["event"],
                any_calendar=in_default,
            )

        @route("GET", one, "graph.events.get", needs=READ_SCOPES)
        def get_event(request: Request, account: Account, token: _AccessToken) -> Response:
            view = self._view(request)
            _, event = lookup(request, account)
            return Response.json(self._event_json(account, event, view), headers=view.headers())

        @route("PATCH", one, "graph.events.update", needs=WRITE_SCOPES)
        def update_event(request: Request, account: Account, token: _AccessToken) -> Response:
            view = self._view(request, select=False, expand=False)
            calendar, event = lookup(request, account)
            if not calendar.can_edit:
                raise _denied()
            match = request.headers.get("if-match")
            if match and match.strip() != "*" and match.strip() != _etag(event):
                raise HTTPError(
                    412,
                    "ErrorIrresolvableConflict",
                    "The send or update operation "
                    "could not be performed because the change key passed in the "
                    "request does not match the current change key for the item.",
                )
            updated = self._update_event(account, calendar, event, _json_object(request))
            return Response.json(self._event_json(account, updated, view), headers=view.headers())

        @route("DELETE", one, "graph.events.delete", needs=WRITE_SCOPES)
        def delete_event(request: Request, account: Account, token: _AccessToken) -> Response:
            calendar, event = lookup(request, account)
            if not calendar.can_edit:
                raise _denied()
            self.store.delete(account, calendar, event)
            return Response(204)

        @route("GET", [p + r"/instances" for p in one], "graph.events.instances", needs=READ_SCOPES)
        def instances(request: Request, account: Account, token: _AccessToken) -> Response:
            view = self._view(request)
            calendar, master = lookup(request, account)
            start, end = _window(request)
            events = [
                e
                for e in self._live(calendar)
                if e.series_id == master.id and e.start_utc() < end and e.end_utc() > start
            ]
            events = self._filter_and_order(account, events, request)
            context = f"{request.base_url}/v1.0/$metadata#Collection(event)"
            return self._paged(request, view, events, context, account=account)

        @route("POST", [r"/v1\.0/\$batch"], "graph.batch", counted=False)
        def batch(request: Request, account: Account, token: _AccessToken) -> Response:
            return self._batch(request)

        subs = r"/v1\.0/subscriptions"

        @route("POST", [subs], "graph.subscriptions.create", counted=False)
        def create_subscription(
            request: Request, account: Account, token: _AccessToken
        ) -> Response:
            return self._create_subscription(request, account, token)

        @route("GET", [subs], "graph.subscriptions.list", counted=False)
        def list_subscriptions(request: Request, account: Account, token: _AccessToken) -> Response:
            mine = [s.as_json() | {"creatorId": account.uid} for s in self._subscriptions_of(token)]
            return Response.json(
                {
                    "@odata.context": f"{request.base_url}/v1.0/$metadata#subscriptions",
                    "value": mine,
                }
            )

        one_sub = [subs + r"/(?P<subscription>[^/]+)"]

        @route("GET", one_sub, "graph.subscriptions.get", counted=False)
        def get_subscription(request: Request, account: Account, token: _AccessToken) -> Response:
            subscription = self._subscription_of(request, token)
            return Response.json(subscription.as_json() | {"creatorId": account.uid})

        @route("PATCH", one_sub, "graph.subscriptions.update", counted=False)
        def update_subscription(
            request: Request, account: Account, token: _AccessToken
        ) -> Response:
            return self._update_subscription(request, account, token)

        @route("DELETE", one_sub, "graph.subscriptions.delete", counted=False)
        def delete_subscription(
            request: Request, account: Account, token: _AccessToken
        ) -> Response:
            subscription = self._subscription_of(request, token)
            with self._lock:
                self._subscriptions.pop(subscription.id, None)
            return Response(204)

        @route(
            "POST",
            [subs + r"/(?P<subscription>[^/]+)/reauthorize"],
            "graph.subscriptions.reauthorize",
            counted=False,
        )
        def reauthorize(request: Request, account: Account, token: _AccessToken) -> Response:
            self._subscription_of(request, token)
            return Response(204)

        # Anything else under /v1.0 answers in Graph's shape, as Graph does.
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            self.graph.route(
                method,
                r"/v1\.0(?:/.*)?",
                "graph.unknown",
                identify=lambda r: self._identify(r, counted=False),
            )(self._unknown)

    def _unknown(self, request: Request) -> Response:
        for candidate in self.graph.routes:
            if candidate.endpoint != "graph.unknown" and candidate.pattern.match(request.path):
                raise HTTPError(
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                )
        segments = [s for s in request.path.split("/")[2:] if s]
        segment = unquote(segments[-1]) if segments else "v1.0"
        raise HTTPError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    def _paged(
        self,
        request: Request,
        view: _View,
        items: list[Any],
        context: str,
        *,
        account: Account | None = None,
    ) -> Response:
        """Graph's paging: `$top` (or `odata.maxpagesize`) per page, `$skip` in the nextLink."""
        top, skip = _odata_int(request, "top"), _odata_int(request, "skip") or 0
        size = min(top or view.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        page = items[skip : skip + size]
        values = [
            self._event_json(account, item, view) if account is not None else item for item in page
        ]
        body: dict[str, Any] = {"@odata.context": context, "value": values}
        if skip + size < len(items):
            body["@odata.nextLink"] = _link(request, view.base, {"skip": str(skip + size)})
        return Response.json(body, headers=view.headers())

    def _filter_and_order(
        self, account: Account, events: list[Event], request: Request
    ) -> list[Event]:
        text = _odata(request, "filter")
        if text:
            predicate = _FilterParser(text).parse()
            utc = _View(base=request.base_url)
            events = [
                e for e in events if predicate(e, lambda e=e: self._event_json(account, e, utc))
            ]
        order = _odata(request, "orderby")
        keys: list[tuple[Callable[[Event], Any], bool]] = []
        for clause in (order or "").split(","):
            words = clause.split()
            if not words:
                continue
            getter = _ORDER_KEYS.get(words[0].lower())
            descending = len(words) > 1 and words[1].lower() == "desc"
            if getter is None or (len(words) > 1 and words[1].lower() not in {"asc", "desc"}):
                raise HTTPError(400, "BadRequest", f"Invalid $orderby clause '{clause.strip()}'.")
            keys.append((getter, descending))
        events = sorted(events, key=lambda e: (e.start_utc(), e.id))
        for getter, descending in reversed(keys):
            events.sort(key=getter, reverse=descending)
        return events

    # --- Graph: writes ------------------------------------------------------------------------

    def _apply_fields(self, event: Event, body: dict[str, Any], *, creating: bool) -> bool:
        """Apply Graph event properties to `event`; True if its times or recurrence changed."""
        unknown = [k for k in body if not k.startswith("@") and k not in EVENT_PROPERTIES]
        if unknown:
            raise HTTPError(
                400,
                "RequestBodyRead",
                f"The property '{unknown[0]}' does not exist "
                "on type 'microsoft.graph.event'. Make sure to only use property "
                "names that are defined by the type.",
            )
        graph = dict(event.extra.get("graph") or {})
        timing = False
        if "subject" in body:
            event.title = str(body["subject"] or "")
        if "body" in body:
            value = body["body"] or {}
            if not isinstance(value, dict):
                raise HTTPError(400, "RequestBodyRead", "'body' must be an itemBody object.")
            kind = str(value.get("contentType") or "text").lower()
            event.description = str(value.get("content") or "")
            graph["bodyType"] = "html" if kind == "html" else "text"
        if "location" in body:
            value = body["location"] or {}
            event.location = str(value.get("displayName") or "") if isinstance(value, dict) else ""
        for name in WRITABLE_EXTRAS:
            if name in body:
                graph[name] = copy.deepcopy(body[name])
        if body.get("isOnlineMeeting") and not event.online_url:
            event.online_url = f"https://teams.sandbox.test/l/meetup-join/{secrets.token_hex(12)}"
        elif body.get("isOnlineMeeting") is False:
            event.online_url = ""
        if creating and not (body.get("start") and body.get("end")):
            raise _invalid_event(
                "Your request can't be completed. The start and end of the event are required."
            )
        if any(k in body for k in ("start", "end", "isAllDay")):
            timing = True
            self._apply_times(event, body, creating=creating)
        if "recurrence" in body:
            if event.is_occurrence:
                raise _invalid_event("An occurrence of a series cannot have a recurrence.")
            event.recurrence = rrule_from_json(body["recurrence"]) if body["recurrence"] else []
            timing = True
        properties = body.get("singleValueExtendedProperties")
        if properties is not None:
            if not isinstance(properties, list):
                raise HTTPError(
                    400, "RequestBodyRead", "'singleValueExtendedProperties' must be a list."
                )
            for item in properties:
                key = normalize_property_id(item.get("id") if isinstance(item, dict) else None)
                if key is None or not isinstance(item, dict):
                    raise HTTPError(
                        400,
                        "ErrorInvalidProperty",
                        "The extended property id "
                        f"'{item.get('id') if isinstance(item, dict) else item}' is "
                        "not valid.",
                    )
                event.private_properties[key] = str(item.get("value", ""))
        event.extra["graph"] = graph
        return timing

    def _apply_times(self, event: Event, body: dict[str, Any], *, creating: bool) -> None:
        all_day = bool(body.get("isAllDay", event.all_day if not creating else False))
        start_local, start_zone = _parse_dtz(body.get("start"), "start", event, "start")
        end_local, end_zone = _parse_dtz(body.get("end"), "end", event, "end")
        if all_day:
            if start_local.time() != datetime.min.time() or end_local.time() != datetime.min.time():
                raise _invalid_event("The start and end of an all-day event must be at midnight.")
            if end_local.date() <= start_local.date():
                raise _invalid_event("The end of an all-day event must be after its start.")
            event.start, event.end = start_local.date(), end_local.date()
            event.time_zone = start_zone
            return
        start = start_local.replace(tzinfo=_tz(start_zone))
        end = end_local.replace(tzinfo=_tz(end_zone)).astimezone(_tz(start_zone))
        if end < start:
            raise _invalid_event("The end of the event must not be before its start.")
        event.start, event.end, event.time_zone = start, end, start_zone

    def _create_event(self, account: Account, calendar: Calendar, body: dict[str, Any]) -> Event:
        if not calendar.can_edit:
            raise _denied()
        transaction = body.get("transactionId")
        if transaction is not None and not isinstance(transaction, str):
            raise HTTPError(400, "RequestBodyRead", "'transactionId' must be a string.")
        event = Event(
            id=new_graph_id(),
            calendar_id=calendar.id,
            ical_uid="040000008200E00074C5B7101A82E00800000000" + secrets.token_hex(28).upper(),
            title="",
            start=date.today(),
            end=date.today(),
            transaction_id=transaction or "",
        )
        self._apply_fields(event, body, creating=True)
        with self.store.lock:
            # A retried create with the same transactionId gives back the event it made.
            if transaction:
                seen = self._transactions.get((account.email, transaction))
                if seen is not None:
                    existing = account.calendars.get(seen[0], calendar).events.get(seen[1])
                    if existing is not None and not existing.deleted:
                        return existing
            self.store.save(account, calendar, event)
            if transaction:
                self._transactions[(account.email, transaction)] = (calendar.id, event.id)
            if event.is_master:
                self._expand(account, calendar, event)
        return event

    def _expand(self, account: Account, calendar: Calendar, master: Event) -> None:
        for occurrence in expand_series(master):
            occurrence.id = new_graph_id()
            occurrence.extra = copy.deepcopy(master.extra)
            self.store.save(account, calendar, occurrence)

    def _update_event(
        self, account: Account, calendar: Calendar, event: Event, body: dict[str, Any]
    ) -> Event:
        with self.store.lock:
            updated = dataclasses.replace(
                event,
                private_properties=dict(event.private_properties),
                extra=copy.deepcopy(event.extra),
                recurrence=list(event.recurrence),
            )
            timing = self._apply_fields(updated, body, creating=False)
            if updated.is_occurrence:
                updated.is_exception = True
            self.store.save(account, calendar, updated)
            if event.is_master or updated.is_master:
                occurrences = [
                    e for e in calendar.events.values() if e.series_id == event.id and not e.deleted
                ]
                if timing:
                    # Outlook drops a series' exceptions when its pattern or times change.
                    for occurrence in occurrences:
                        self.store.delete(account, calendar, occurrence)
                    if updated.is_master:
                        self._expand(account, calendar, updated)
                else:
                    for occurrence in occurrences:
                        if occurrence.is_exception:
                            continue
                        copy_ = dataclasses.replace(
                            occurrence,
                            title=updated.title,
                            description=updated.description,
                            location=updated.location,
                            online_url=updated.online_url,
                            private_properties=dict(updated.private_properties),
                            extra=copy.deepcopy(updated.extra),
                        )
                        self.store.save(account, calendar, copy_)
        return updated

    # --- Graph: delta -------------------------------------------------------------------------

    def _sign(self, state: dict[str, Any]) -> str:
        payload = _b64url(json.dumps(state, separators=(",", ":")).encode())
        mac = _b64url(hmac.new(self._delta_key, payload.encode(), hashlib.sha256).digest()[:16])
        return f"{payload}.{mac}"

    def _unsign(self, token: str) -> dict[str, Any] | None:
        payload, _, mac = token.partition(".")
        expected = _b64url(
            hmac.new(self._delta_key, payload.encode(), hashlib.sha256).digest()[:16]
        )
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return None
        try:
            state = json.loads(_b64url_decode(payload))
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def _delta(self, request: Request, account: Account, calendar: Calendar) -> Response:
        """https://learn.microsoft.com/graph/api/event-delta: state lives in the tokens."""
        view = self._view(request, select=False, expand=False)
        for name in ("filter", "orderby", "search", "top", "skip"):
            if _odata(request, name):
                raise _not_in_delta(name)
        skip_token, delta_token = _odata(request, "skiptoken"), _odata(request, "deltatoken")
        gone = HTTPError(410, "SyncStateNotFound", "The sync state generation is not found.")
        if skip_token or delta_token:
            state = self._unsign(skip_token or delta_token or "")
            if (
                state is None
                or state.get("u") != account.uid
                or state.get("c") != calendar.id
                or state.get("m") not in ({"full", "changes"} if skip_token else {"delta"})
                or int(state.get("b", 0)) < calendar.min_valid_seq
            ):
                raise gone
            if state["m"] == "delta":  # a new round of changes since that point
                state = {**state, "m": "changes", "r": self.store.seq, "k": state["b"]}
            zone_name = state.get("z")
            if zone_name and not view.applied:
                view.zone_name, view.zone = zone_name, _tz(iana_zone(zone_name) or "UTC")
        else:
            start, end = _window(request)
            state = {
                "m": "full",
                "u": account.uid,
                "c": calendar.id,
                "s": start.timestamp(),
                "e": end.timestamp(),
                "b": self.store.seq,
                "r": self.store.seq,
                "k": "",
            }
        state["z"] = view.zone_name if view.zone_name != "UTC" else None
        window_start = datetime.fromtimestamp(state["s"], UTC)
        window_end = datetime.fromtimestamp(state["e"], UTC)
        size = view.page_size or DEFAULT_PAGE_SIZE

        def in_window(e: Event) -> bool:
            return (
                not e.deleted
                and e.status != "cancelled"
                and not e.is_master
                and e.start_utc() < window_end
                and e.end_utc() > window_start
            )

        with self.store.lock:
            events = list(calendar.events.values())
        values: list[dict[str, Any]] = []
        if state["m"] == "full":
            # Everything in the window now, by id; changes made during the round come again in
            # the next one, since the deltaLink starts from the seq the round started at.
            cursor = state["k"]
            candidates = sorted(
                (e for e in events if e.id > cursor and in_window(e)), key=lambda e: e.id
            )
            page, more = candidates[:size], len(candidates) > size
            for event in page:
                values.append(
                    {
                        "@odata.type": "#microsoft.graph.event",
                        **self._event_json(account, event, view),
                    }
                )
            if page:
                state["k"] = page[-1].id
        else:
            cursor = int(state["k"])
            candidates = sorted(
                (e for e in events if cursor < e.seq <= state["r"] and not e.is_master),
                key=lambda e: e.seq,
            )
            page, more = candidates[:size], len(candidates) > size
            for event in page:
                if in_window(event):
                    values.append(
                        {
                            "@odata.type": "#microsoft.graph.event",
                            **self._event_json(account, event, view),
                        }
                    )
                else:
                    values.append(
                        {
                            "@odata.type": "#microsoft.graph.event",
                            "id": event.id,
                            "@removed": {"reason": "deleted"},
                        }
                    )
            if page:
                state["k"] = page[-1].seq
        path = request.path
        body: dict[str, Any] = {
            "@odata.context": f"{view.base}/v1.0/$metadata#Collection(event)",
            "value": values,
        }
        if more:
            body["@odata.nextLink"] = f"{view.base}{path}?$skiptoken={self._sign(state)}"
        else:
            end_state = {
                "m": "delta",
                "u": account.uid,
                "c": calendar.id,
                "s": state["s"],
                "e": state["e"],
                "b": state["r"],
                "z": state.get("z"),
            }
            body["@odata.deltaLink"] = f"{view.base}{path}?$deltatoken={self._sign(end_state)}"
        applied = ["odata.track-changes", *view.applied]
        return Response.json(body, headers={"Preference-Applied": ", ".join(applied)})

    # --- Graph: JSON batching -------------------------------------------------------------------

    def _batch(self, request: Request) -> Response:
        """https://learn.microsoft.com/graph/json-batching: each inner request goes through
        `Sandbox.handle`, so counters, faults and the mailbox concurrency limit apply to it."""
        try:
            payload = request.json()
        except ValueError:
            payload = None
        items = payload.get("requests") if isinstance(payload, dict) else None
        invalid = HTTPError(400, "BadRequest", "Invalid batch payload format.")
        if not isinstance(items, list) or not items:
            raise invalid
        if len(items) > MAX_BATCH_REQUESTS:
            raise HTTPError(
                400,
                "BadRequest",
                f"The number of requests in the batch "
                f"({len(items)}) exceeds the limit of {MAX_BATCH_REQUESTS}.",
            )
        ids: list[str] = []
        for item in items:
            if (
                not isinstance(item, dict)
                or not all(
                    isinstance(item.get(k), str) and item[k] for k in ("id", "method", "url")
                )
                or not isinstance(item.get("headers") or {}, dict)
            ):
                raise invalid
            ids.append(item["id"].lower())
        if len(set(ids)) != len(ids):
            raise HTTPError(400, "BadRequest", "Batch request ids must be unique.")
        by_id = {item["id"].lower(): item for item in items}
        for item in items:
            depends = item.get("dependsOn") or []
            if not isinstance(depends, list) or any(str(d).lower() not in by_id for d in depends):
                raise HTTPError(400, "BadRequest", "dependsOn refers to an unknown request id.")
        order = _topological(items)
        if order is None:
            raise HTTPError(400, "BadRequest", "dependsOn has a cycle.")
        statuses: dict[str, int] = {}
        answers: dict[str, dict[str, Any]] = {}
        for item in order:
            key = item["id"].lower()
            depends = [str(d).lower() for d in item.get("dependsOn") or []]
            if any(statuses.get(d, 0) >= 400 for d in depends):
                answer = _inner_error(item["id"], 424, "FailedDependency", "Failed dependency.")
            else:
                answer = self._inner(request, item)
            statuses[key] = answer["status"]
            answers[key] = answer
        responses = [answers[item["id"].lower()] for item in items]
        return Response.json({"responses": responses})

    def _inner(self, outer: Request, item: dict[str, Any]) -> dict[str, Any]:
        url = item["url"]
        if url.lower().startswith(("http://", "https://")) or "$batch" in url.lower():
            return _inner_error(item["id"], 400, "BadRequest", "Invalid request URL.")
        headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
        body = b""
        if "body" in item and item["body"] is not None:
            if not any(k.lower() == "content-type" for k in headers):
                return _inner_error(
                    item["id"],
                    400,
                    "BadRequest",
                    "Write request id : "
                    f"{item['id']} does not contain Content-Type header or "
                    "body.",
                )
            value = item["body"]
            body = value.encode() if isinstance(value, str) else json.dumps(value).encode()
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if outer.headers.get("authorization"):
            headers["Authorization"] = outer.headers["authorization"]
        target = "/v1.0" + ("" if url.startswith("/") else "/") + url
        inner = Request(
            item["method"], target, headers, body, base_url=outer.base_url, secure=outer.secure
        )
        response, fault = self.sandbox.handle(inner)
        self._local.request = outer
        if fault is not None and fault.kind == "lost_response":
            return _inner_error(item["id"], 504, "GatewayTimeout", "The request timed out.")
        answer: dict[str, Any] = {
            "id": item["id"],
            "status": response.status,
            "headers": {k: v for k, v in response.headers.items() if k.lower() != "content-length"},
        }
        if response.body:
            try:
                answer["body"] = json.loads(response.body)
            except ValueError:
                answer["body"] = response.body.decode("utf-8", "replace")
        return answer

    # --- Graph: subscriptions and notifications ---------------------------------------------

    def _subscriptions_of(self, token: _AccessToken) -> list[_Subscription]:
        now = datetime.now(UTC)
        with self._lock:
            for key in [k for k, s in self._subscriptions.items() if s.expires <= now]:
                del self._subscriptions[key]  # Graph deletes expired subscriptions
            return [
                s
                for s in self._subscriptions.values()
                if s.email == token.email and s.client_id == token.client_id
            ]

    def _subscription_of(self, request: Request, token: _AccessToken) -> _Subscription:
        wanted = unquote(request.params["subscription"])
        for subscription in self._subscriptions_of(token):
            if subscription.id == wanted:
                return subscription
        raise HTTPError(404, "ResourceNotFound", "The object was not found.")

    def _resource_calendar(self, account: Account, resource: str) -> Calendar | None:
        """The calendar a subscription's resource names; None for `me/events`, which Graph
        documents as every event of the mailbox."""
        path = resource.strip().strip("/")
        match = re.fullmatch(
            r"(?i:me|users/(?P<user>[^/]+))/(?:(?i:events)|(?i:calendar)/(?i:events)|"
            r"(?i:calendars)(?:/(?P<id1>[^/()]+)|\('(?P<id2>[^']+)'\))/(?i:events))",
            path,
        )
        if match is None or (
            match["user"] and unquote(match["user"]).lower() not in {account.email, account.uid}
        ):
            raise HTTPError(400, "InvalidRequest", f"Resource '{resource}' is not supported.")
        calendar_id = match["id1"] or match["id2"]
        if calendar_id is None:
            return account.primary if "calendar/" in path.lower() else None
        calendar = account.calendars.get(unquote(calendar_id))
        if calendar is None:
            raise HTTPError(404, "ResourceNotFound", f"Resource '{resource}' was not found.")
        return calendar

    def _check_expiration(self, value: Any) -> datetime:
        expires = _parse_datetime(value) if isinstance(value, str) else None
        if expires is None:
            raise HTTPError(
                400, "InvalidRequest", "expirationDateTime is required: an ISO 8601 date and time."
            )
        now = datetime.now(UTC)
        if expires <= now:
            raise HTTPError(
                400, "InvalidRequest", "Subscription expiration can only be in the future."
            )
        if expires > now + timedelta(minutes=SUBSCRIPTION_MAX_MINUTES):
            raise HTTPError(
                400,
                "InvalidRequest",
                f"Subscription expiration can only be "
                f"{SUBSCRIPTION_MAX_MINUTES} minutes in the future.",
            )
        return expires

    def _validate_endpoint(self, url: Any, name: str) -> str:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
            raise HTTPError(400, "InvalidRequest", f"{name} is required: an https URL.")
        # Graph calls https URLs only; plain http is allowed here for loopback test servers.
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise HTTPError(400, "InvalidRequest", f"The {name} must use https.")
        token = (
            "Validation: Testing client application reachability for subscription "
            f"Request-Id: {uuid.uuid4()}"
        )
        failed = HTTPError(
            400,
            "InvalidRequest",
            "Subscription validation request failed. "
            "Notification endpoint must respond with 200 OK to validation "
            "request.",
        )
        try:
            with requests.Session() as session:
                session.trust_env = not _is_loopback(parts.hostname)
                answer = session.post(
                    _with_query(url, {"validationToken": token}),
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                    data=b"",
                    timeout=self.sandbox.options.notification_timeout,
                    allow_redirects=False,
                )
        except requests.RequestException as error:
            logger.info("subscription validation of %s failed: %s", url, type(error).__name__)
            raise failed from None
        content_type = answer.headers.get("Content-Type", "")
        if (
            answer.status_code != 200
            or not content_type.lower().startswith("text/plain")
            or answer.content.decode("utf-8", "replace") != token
        ):
            raise failed
        return url

    def _create_subscription(
        self, request: Request, account: Account, token: _AccessToken
    ) -> Response:
        """https://learn.microsoft.com/graph/api/subscription-post-subscriptions"""
        body = _json_object(request)
        if not token.scopes & READ_SCOPES:
            raise HTTPError(
                403,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: "
                "Forbidden; Reason: Access is denied. Check credentials and try "
                "again.]",
            )
        change_types = [c.strip() for c in str(body.get("changeType") or "").split(",")]
        if not change_types or any(
            c not in {"created", "updated", "deleted"} for c in change_types
        ):
            raise HTTPError(
                400,
                "InvalidRequest",
                "changeType must list created, updated and deleted, separated by commas.",
            )
        resource = body.get("resource")
        if not isinstance(resource, str) or not resource:
            raise HTTPError(400, "InvalidRequest", "resource is required.")
        calendar = self._resource_calendar(account, resource)
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > 128
        ):
            raise HTTPError(400, "InvalidRequest", "clientState is at most 128 characters.")
        expires = self._check_expiration(body.get("expirationDateTime"))
        lifecycle = body.get("lifecycleNotificationUrl")
        notification = self._validate_endpoint(body.get("notificationUrl"), "notificationUrl")
        if lifecycle is not None:
            self._validate_endpoint(lifecycle, "lifecycleNotificationUrl")
        subscription = _Subscription(
            id=str(uuid.uuid4()),
            email=account.email,
            client_id=token.client_id,
            calendar_id=calendar.id if calendar is not None else None,
            resource=resource,
            change_types=change_types,
            notification_url=notification,
            lifecycle_url=lifecycle,
            client_state=client_state,
            expires=expires,
        )
        with self._lock:
            self._subscriptions[subscription.id] = subscription
        self._ensure_worker()
        data = {
            "@odata.context": f"{request.base_url}/v1.0/$metadata#subscriptions/$entity",
            **subscription.as_json(),
            "creatorId": account.uid,
        }
        return Response.json(data, 201)

    def _update_subscription(
        self, request: Request, account: Account, token: _AccessToken
    ) -> Response:
        """https://learn.microsoft.com/graph/api/subscription-update"""
        subscription = self._subscription_of(request, token)
        body = _json_object(request)
        unknown = set(body) - {"expirationDateTime", "notificationUrl"}
        if unknown:
            raise HTTPError(
                400, "InvalidRequest", f"Property '{sorted(unknown)[0]}' cannot be updated."
            )
        expires = (
            self._check_expiration(body["expirationDateTime"])
            if "expirationDateTime" in body
            else subscription.expires
        )
        url = (
            self._validate_endpoint(body["notificationUrl"], "notificationUrl")
            if "notificationUrl" in body
            else subscription.notification_url
        )
        with self._lock:
            subscription.expires, subscription.notification_url = expires, url
        return Response.json(subscription.as_json() | {"creatorId": account.uid})

    def _on_change(self, account: Account, calendar: Calendar, event: Event) -> None:
        # Called by Store.save, often with the store's lock held: only queue work here.
        if account.provider != MICROSOFT:
            return
        with self._lock:
            created = event.id not in self._known_ids
            self._known_ids.add(event.id)
            if not self._subscriptions:
                return
            now = datetime.now(UTC)
            targets = [
                s
                for s in self._subscriptions.values()
                if s.email == account.email
                and s.calendar_id in (None, calendar.id)
                and s.expires > now
            ]
        if event.deleted or event.status == "cancelled":
            change = "deleted"
        else:
            change = "created" if created else "updated"
        resource = f"Users/{account.uid}/Events/{event.id}"
        for subscription in targets:
            if change not in subscription.change_types:
                continue
            self._enqueue(
                "change",
                subscription.notification_url,
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": _stamp(subscription.expires),
                    "changeType": change,
                    "resource": resource,
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Event",
                        "@odata.id": resource,
                        "@odata.etag": _etag(event),
                        "id": event.id,
                    },
                    "clientState": subscription.client_state,
                    "tenantId": account.tenant_id,
                },
            )

    def _enqueue(self, kind: str, url: str, item: dict[str, Any]) -> None:
        self._ensure_worker()
        self._queue.put((kind, url, item))

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._stopping or (self._worker is not None and self._worker.is_alive()):
                return
            self._worker = threading.Thread(
                target=self._deliver_forever, name="sandbox-graph-notifications", daemon=True
            )
            self._worker.start()

    def _deliver_forever(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            # Graph sends several notifications in one POST when they pile up.
            while len(batch) < 100:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for kind, url, payload in batch:
                groups.setdefault((kind, url), []).append(payload)
            for (kind, url), payloads in groups.items():
                self._post(kind, url, payloads)

    def _post(self, kind: str, url: str, payloads: list[dict[str, Any]]) -> None:
        record: dict[str, Any] = {
            "kind": kind,
            "url": url,
            "count": len(payloads),
            "at": _now_iso(),
        }
        host = urlsplit(url).hostname
        try:
            with requests.Session() as session:
                session.trust_env = not _is_loopback(host)
                answer = session.post(
                    url,
                    json={"value": payloads},
                    timeout=self.sandbox.options.notification_timeout,
                    allow_redirects=False,
                )
            record["status"] = answer.status_code
        except requests.RequestException as error:
            record["error"] = type(error).__name__
        self.sandbox.counters[
            "graph.notifications" if kind == "change" else "graph.notifications.lifecycle"
        ] += 1
        self.deliveries.append(record)

    # --- control routes -----------------------------------------------------------------------

    def _install_control(self) -> None:
        router = self.control

        @router.route("GET", r"/_sandbox/api/subscriptions", "sandbox.subscriptions")
        def list_all(request: Request) -> Response:
            return Response.json(
                [
                    {k: v for k, v in s.as_json().items() if k != "clientState"}
                    | {"email": s.email}
                    for s in self.subscriptions()
                ]
            )

        @router.route(
            "POST",
            r"/_sandbox/api/subscriptions/(?P<id>[^/]+)/lifecycle/(?P<event>[^/]+)",
            "sandbox.subscriptions.lifecycle",
        )
        def lifecycle(request: Request) -> Response:
            try:
                self.send_lifecycle_notification(request.params["id"], request.params["event"])
            except KeyError:
                raise HTTPError(404, "notFound", "no such subscription") from None
            except ValueError as error:
                raise HTTPError(400, "badRequest", str(error)) from None
            return Response(202)


# --- module helpers ---------------------------------------------------------------------------

_MODES = {"query", "fragment", "form_post"}


def _invalid_grant(code: int, **values: str) -> _OAuthError:
    return _OAuthError(400, "invalid_grant", aadsts(code, **values))


def _issued(grant: _Grant | None) -> str:
    return f" The grant was issued on '{grant.created:%Y-%m-%dT%H:%M:%S}Z'." if grant else ""


def _client_info(account: Account) -> str:
    info = {"uid": account.uid, "utid": account.tenant_id}
    return _b64url(json.dumps(info, separators=(",", ":")).encode())


def _denied() -> HTTPError:
    return HTTPError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def _not_found() -> HTTPError:
    return HTTPError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def _not_in_delta(name: str) -> HTTPError:
    text = f"The query parameter '${name}' is not supported with change tracking over the "
    return HTTPError(400, "ErrorInvalidUrlQuery", text + "'CalendarView' resource.")


def _invalid_event(message: str) -> HTTPError:
    return HTTPError(400, "ErrorInvalidRequest", message)


def _with_query(url: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    pairs += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def _redirect_result(uri: str, mode: str, params: dict[str, str | None]) -> Response:
    values = {k: v for k, v in params.items() if v is not None}
    if mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in values.items()
        )
        return Response.html(
            _page(
                "Working…",
                f'<form method="post" action="{html.escape(uri)}" id="response">{fields}'
                "<noscript><p>Script is disabled. Click Submit to continue.</p>"
                '<button type="submit">Submit</button></noscript></form>'
                "<script>document.getElementById('response').submit()</script>",
            )
        )
    if mode == "fragment":
        return Response.redirect(f"{uri.split('#')[0]}#{urlencode(values)}")
    return Response.redirect(_with_query(uri, values))


_STYLE = """
body{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;color:#1b1b1b;margin:0}
main{max-width:30rem;margin:3rem auto;background:#fff;padding:2rem 2.5rem;
box-shadow:0 2px 6px rgba(0,0,0,.2)}
.brand{font-weight:600;color:#5e5e5e;margin:0 0 1rem}
h1{font-size:1.5rem;font-weight:600;margin:0 0 1rem}
h2{font-size:1rem;margin:1.5rem 0 .5rem}
fieldset{border:0;padding:0;margin:0}
legend{font-weight:600;margin-bottom:.5rem}
.account{display:flex;gap:.75rem;align-items:center;padding:.6rem;border:1px solid #ccc;
margin:.4rem 0}
.account:focus-within{outline:3px solid #0067b8}
.account small{display:block;color:#505050}
.actions{display:flex;gap:.75rem;justify-content:flex-end;margin-top:1.5rem}
button{font:inherit;padding:.5rem 1.5rem;border:1px solid #8a8a8a;background:#ccc;cursor:pointer}
button:focus{outline:3px solid #0067b8;outline-offset:2px}
#accept{background:#0067b8;border-color:#0067b8;color:#fff}
code{font-size:.9em}
"""


def _page(title: str, content: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} — Microsoft (sandbox)</title><style>{_STYLE}</style>"
        f'</head><body><main><p class="brand">Microsoft (sandbox)</p>{content}</main>'
        "</body></html>"
    )


def _account_id(email: str) -> str:
    return "account-" + re.sub(r"[^a-z0-9]+", "-", email.lower()).strip("-")


def _consent_page(
    action: str, request_id: str, pending: _AuthRequest, accounts: list[Account]
) -> str:
    e = html.escape
    host = urlsplit(pending.redirect_uri).netloc
    chosen = (
        pending.login_hint
        if any(a.email == pending.login_hint for a in accounts)
        else (accounts[0].email if accounts else None)
    )
    choices = []
    for account in accounts:
        kind = (
            "Personal account"
            if account.tenant_id == CONSUMERS_TENANT_ID
            else "Work or school account"
        )
        checked = " checked" if account.email == chosen else ""
        ident = _account_id(account.email)
        choices.append(
            f'<div class="account"><input type="radio" name="account" id="{ident}" '
            f'value="{e(account.email)}"{checked}><label for="{ident}">{e(account.name)}'
            f" <small>{e(account.email)}</small> <small>{kind}</small></label></div>"
        )
    if choices:
        chooser = (
            '<fieldset id="accounts"><legend>Pick an account</legend>'
            + "".join(choices)
            + "</fieldset>"
        )
    else:
        chooser = '<p id="no-accounts">No sandbox account can sign in to this tenant.</p>'
    permissions = "".join(
        f"<li>{e(PERMISSION_TEXT.get(s, s))} <small>(<code>{e(s)}</code>)</small></li>"
        for s in pending.scopes
    )
    accept = (
        '<button type="submit" name="action" value="accept" id="accept">Accept</button>'
        if accounts
        else ""
    )
    return _page(
        "Permissions requested",
        "<h1>Permissions requested</h1>"
        f"<p>The application <code>{e(pending.client_id)}</code> will be able to:</p>"
        f'<ul id="permissions">{permissions}</ul>'
        f'<form method="post" action="{e(action)}" id="consent">'
        f'<input type="hidden" name="request" value="{e(request_id)}">{chooser}'
        "<p>Accepting these permissions means that you allow this app to use your data as "
        f"specified in their terms of service. You will be sent back to <strong>{e(host)}"
        "</strong>.</p>"
        '<div class="actions"><button type="submit" name="action" value="cancel" id="cancel">'
        f"Cancel</button>{accept}</div></form>",
    )


def _odata(request: Request, name: str) -> str | None:
    """An OData system query option, with or without `$`, in any case."""
    for key, values in request.query.items():
        if key.lower().lstrip("$") == name and values:
            return values[-1]
    return None


def _odata_int(request: Request, name: str) -> int | None:
    value = _odata(request, name)
    if value is None:
        return None
    if not value.isdigit():
        raise HTTPError(400, "BadRequest", f"Invalid value '{value}' for ${name}.")
    return int(value)


def _window(request: Request) -> tuple[datetime, datetime]:
    args = {k.lower(): v[-1] for k, v in request.query.items() if v}
    raw_start, raw_end = args.get("startdatetime"), args.get("enddatetime")
    if not raw_start or not raw_end:
        raise HTTPError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window "
            "specified by the query string parameters StartDateTime and "
            "EndDateTime.",
        )
    start, end = _parse_datetime(raw_start), _parse_datetime(raw_end)
    if start is None or end is None:
        name, value = ("StartDateTime", raw_start) if start is None else ("EndDateTime", raw_end)
        raise HTTPError(
            400, "ErrorInvalidParameter", f"The value '{value}' of parameter '{name}' is invalid."
        )
    return start, end


def _link(request: Request, base: str, overrides: dict[str, str]) -> str:
    pairs = [
        (k, v)
        for k, values in request.query.items()
        for v in values
        if k.lower().lstrip("$") not in overrides
    ]
    pairs += [(f"${k}", v) for k, v in overrides.items()]
    return f"{base}{request.path}?{urlencode(pairs, quote_via=quote, safe="$',:()@")}"


def _json_object(request: Request) -> dict[str, Any]:
    try:
        value = request.json()
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise HTTPError(400, "BadRequest", "Empty Payload. JSON content expected.")
    return value


def _parse_dtz(value: Any, name: str, event: Event, attribute: str) -> tuple[datetime, str]:
    """A dateTimeTimeZone as (naive local time, IANA zone); the event's own if absent."""
    if value is None:
        current = getattr(event, attribute)
        if isinstance(current, datetime):
            local = current.astimezone(_tz(event.time_zone))
            return local.replace(tzinfo=None), event.time_zone
        return datetime.combine(current, datetime.min.time()), event.time_zone
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise HTTPError(400, "RequestBodyRead", f"'{name}' must be a dateTimeTimeZone object.")
    zone_name = value.get("timeZone") or "UTC"
    iana = iana_zone(str(zone_name))
    if iana is None:
        raise HTTPError(
            400,
            "TimeZoneNotSupportedException",
            "A valid TimeZone value must be "
            f"specified. The following TimeZone value is not supported: "
            f"'{zone_name}'.",
        )
    text = re.sub(r"(\.\d{6})\d+", r"\1", value["dateTime"].strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPError(
            400,
            "RequestBodyRead",
            f"Cannot convert the literal '{value['dateTime']}' "
            "to the expected type 'Edm.DateTime'.",
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(_tz(iana)).replace(tzinfo=None)
    return parsed, iana


def _parse_expand(text: str) -> list[str]:
    ids: list[str] = []
    for part in re.split(r",(?![^()]*\))", text):
        part = part.strip()
        match = re.fullmatch(
            r"(?i:singleValueExtendedProperties)\s*\(\s*\$?(?i:filter)\s*=\s*"
            r"(.+)\)",
            part,
            re.S,
        )
        if match:
            found = re.findall(r"(?i:id)\s+(?i:eq)\s+'((?:[^']|'')*)'", match[1])
            if not found:
                raise HTTPError(400, "BadRequest", f"Invalid $expand clause '{part}'.")
            for value in found:
                key = normalize_property_id(value.replace("''", "'"))
                if key is None:
                    raise HTTPError(
                        400,
                        "ErrorInvalidProperty",
                        f"The extended property id '{value}' is not valid.",
                    )
                ids.append(key)
        elif part.lower() in {
            "attachments",
            "calendar",
            "extensions",
            "instances",
            "multivalueextendedproperties",
        }:
            continue
        else:
            raise HTTPError(
                400,
                "BadRequest",
                f"Parsing OData Select and Expand failed: "
                f"Could not find a property named '{part}'.",
            )
    return ids


def _inner_error(request_id: str, status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "status": status,
        "headers": {"Content-Type": "application/json"},
        "body": {
            "error": {
                "code": code,
                "message": message,
                "innerError": {"date": _now_iso(), "request-id": str(uuid.uuid4())},
            }
        },
    }


def _topological(items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Requests in an order that runs each after what it depends on; None on a cycle."""
    done: set[str] = set()
    order: list[dict[str, Any]] = []
    pending = list(items)
    while pending:
        ready = [
            i for i in pending if all(str(d).lower() in done for d in i.get("dependsOn") or [])
        ]
        if not ready:
            return None
        for item in ready:
            order.append(item)
            done.add(item["id"].lower())
            pending.remove(item)
    return order


_ORDER_KEYS: dict[str, Callable[[Event], Any]] = {
    "start/datetime": lambda e: e.start_utc(),
    "end/datetime": lambda e: e.end_utc(),
    "subject": lambda e: e.title.lower(),
    "createddatetime": lambda e: e.created,
    "lastmodifieddatetime": lambda e: e.updated,
    "icaluid": lambda e: e.ical_uid,
}


class _FilterParser:
    """The part of OData $filter the sandbox understands, enough for what an app sends:

    `singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')`,
    `<property> eq|ne|gt|ge|lt|le <literal>` on simple and `start/dateTime`-style properties,
    combined with `and`, `or`, `not` and parentheses. Anything else is a 400, as Graph says
    for a filter it cannot parse.
    """

    TOKEN = re.compile(
        r"\s*(?:(?P<str>'(?:[^']|'')*')"
        r"|(?P<date>\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)"
        r"|(?P<sym>[():,])|(?P<word>[^\s():,']+))"
    )
    FIELDS = {
        "subject",
        "icaluid",
        "type",
        "transactionid",
        "seriesmasterid",
        "isallday",
        "iscancelled",
        "showas",
        "sensitivity",
        "importance",
        "id",
        "start/datetime",
        "end/datetime",
        "isorganizer",
        "isonlinemeeting",
        "lastmodifieddatetime",
        "createddatetime",
    }

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            match = self.TOKEN.match(text, position)
            if not match or match.end() == position:
                if text[position:].strip():
                    raise self.error()
                break
            kind = match.lastgroup or ""
            self.tokens.append((kind, match[kind]))
            position = match.end()
        self.position = 0

    def error(self) -> HTTPError:
        return HTTPError(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The query filter contains one or more invalid nodes.",
        )

    def peek(self) -> str:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise self.error()
        token = self.tokens[self.position]
        if expected is not None and token[1].lower() != expected:
            raise self.error()
        self.position += 1
        return token

    def parse(self) -> Callable[[Event, Callable[[], dict[str, Any]]], bool]:
        predicate = self.parse_or()
        if self.position != len(self.tokens):
            raise self.error()
        return predicate

    def parse_or(self) -> Callable[..., bool]:
        left = self.parse_and()
        while self.peek().lower() == "or":
            self.take()
            right, previous = self.parse_and(), left
            left = lambda e, j, a=previous, b=right: a(e, j) or b(e, j)  # noqa: E731
        return left

    def parse_and(self) -> Callable[..., bool]:
        left = self.parse_not()
        while self.peek().lower() == "and":
            self.take()
            right, previous = self.parse_not(), left
            left = lambda e, j, a=previous, b=right: a(e, j) and b(e, j)  # noqa: E731
        return left

    def parse_not(self) -> Callable[..., bool]:
        if self.peek().lower() == "not":
            self.take()
            inner = self.parse_not()
            return lambda e, j: not inner(e, j)
        if self.peek() == "(":
            self.take("(")
            inner = self.parse_or()
            self.take(")")
            return inner
        return self.parse_comparison()

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "date":
            return _parse_datetime(value)
        low = value.lower()
        if low in {"true", "false"}:
            return low == "true"
        if low == "null":
            return None
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            parsed = _parse_datetime(value)
            if parsed is None:
                raise self.error() from None
            return parsed

    def parse_comparison(self) -> Callable[..., bool]:
        kind, name = self.take()
        if kind != "word":
            raise self.error()
        if name.lower() == "singlevalueextendedproperties/any":
            return self.parse_any()
        if name.lower() not in self.FIELDS:
            raise HTTPError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named "
                f"'{name}' on type 'Microsoft.OutlookServices.Event'.",
            )
        operator = self.take()[1].lower()
        if operator not in {"eq", "ne", "gt", "ge", "lt", "le"}:
            raise self.error()
        expected = self.literal()
        path = name.split("/")

        def compare(event: Event, rendered: Callable[[], dict[str, Any]]) -> bool:
            value: Any = rendered()
            for part in path:
                key = (
                    next((k for k in value if k.lower() == part.lower()), None)
                    if isinstance(value, dict)
                    else None
                )
                value = value.get(key) if key is not None else None
            actual, wanted = value, expected
            if isinstance(wanted, datetime) or path[-1].lower().endswith("datetime"):
                actual = _parse_datetime(str(actual)) if actual is not None else None
                wanted = wanted if isinstance(wanted, datetime) else _parse_datetime(str(wanted))
            if operator == "eq":
                return bool(actual == wanted)
            if operator == "ne":
                return bool(actual != wanted)
            if actual is None or wanted is None:
                return False
            try:
                return bool(
                    {
                        "gt": actual > wanted,
                        "ge": actual >= wanted,
                        "lt": actual < wanted,
                        "le": actual <= wanted,
                    }[operator]
                )
            except TypeError:
                return False

        return compare

    def parse_any(self) -> Callable[..., bool]:
        self.take("(")
        variable = self.take()[1]
        self.take(":")
        conditions: dict[str, str] = {}
        while True:
            _, target = self.take()
            prefix, _, attribute = target.partition("/")
            if prefix != variable or attribute.lower() not in {"id", "value"}:
                raise self.error()
            self.take("eq")
            kind, value = self.take()
            if kind != "str":
                raise self.error()
            conditions[attribute.lower()] = value[1:-1].replace("''", "'")
            if self.peek().lower() != "and":
                break
            self.take()
        self.take(")")
        if "id" not in conditions:
            raise self.error()
        key = normalize_property_id(conditions["id"])
        if key is None:
            raise HTTPError(
                400,
                "ErrorInvalidProperty",
                f"The extended property id '{conditions['id']}' is not valid.",
            )
        wanted = conditions.get("value")

        def matches(event: Event, rendered: Callable[[], dict[str, Any]]) -> bool:
            if key not in event.private_properties:
                return False
            return wanted is None or event.private_properties[key] == wanted

        return matches


def install(sandbox: Sandbox) -> MicrosoftSandbox:
    provider = MicrosoftSandbox(sandbox)
    sandbox.routers.extend(provider.routers)
    return provider
