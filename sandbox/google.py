"""Google OAuth 2.0 and Calendar API v3, as the sandbox emulates them.

OAuth follows https://developers.google.com/identity/protocols/oauth2/web-server: authorization
codes bound to PKCE, refresh tokens that do not rotate, revocation of whole grants, RS256
id_tokens. The Calendar API (https://developers.google.com/calendar/api/v3/reference) is driven
by the discovery document that ships with google-api-python-client: every method in it gets a
route named `google.<method id>` (`google.events.list`), every request is checked against the
method's parameters and scopes, and the methods the sandbox does not emulate answer 501. Batch
requests (https://developers.google.com/calendar/api/guides/batch) dispatch each inner call
through `Sandbox.handle`, so counters and fault rules apply per call. Push notifications
(https://developers.google.com/calendar/api/guides/push) go out from a worker thread.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import html
import http
import ipaddress
import json
import logging
import queue
import re
import secrets
import threading
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, unquote_plus, urlencode, urlsplit

import googleapiclient
import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from dateutil.rrule import rrulestr

from sandbox.server import HTTPError, Request, Response, Router
from sandbox.store import (
    GOOGLE,
    Account,
    Calendar,
    Event,
    expand_series,
    new_google_id,
    utcnow,
)

if TYPE_CHECKING:
    from sandbox.core import Sandbox

logger = logging.getLogger("sandbox.google")

ISSUER = "https://accounts.google.com"
SCOPE_PREFIX = "https://www.googleapis.com/auth/"
USERINFO_EMAIL = SCOPE_PREFIX + "userinfo.email"
USERINFO_PROFILE = SCOPE_PREFIX + "userinfo.profile"
# Google answers with the long names of the short OpenID scopes, and adds "openid" to them; a
# client that compares scopes strictly (oauthlib without OAUTHLIB_RELAX_TOKEN_SCOPE) notices.
SCOPE_ALIASES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}
IDENTITY_SCOPES = {
    "openid": "Associate you with your personal info on Google",
    USERINFO_EMAIL: "See your primary Google Account email address",
    USERINFO_PROFILE: "See your personal info, including any personal info you've made publicly "
    "available",
}

MAX_BATCH_CALLS = 50
MAX_PAGE_SIZE = 2500
CALENDAR_LIST_PAGE_SIZE = (100, 250)  # default, maximum
REFRESH_TOKENS_PER_CLIENT = 100  # Google revokes the oldest beyond this, per account and client
CHANNEL_TTL = 7 * 24 * 3600  # seconds, when the client asks for no expiration
CHANNEL_MAX_TTL = 30 * 24 * 3600
EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
PLAIN_ID = re.compile(r"[A-Za-z0-9_]+")
AUTH_PARAMETERS = {
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "access_type",
    "prompt",
    "login_hint",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "include_granted_scopes",
    "enable_granular_consent",
    "hd",
    "authuser",
}
# events.list parameters Google refuses beside a syncToken (the guide on incremental sync).
NOT_WITH_SYNC_TOKEN = [
    "timeMin",
    "timeMax",
    "updatedMin",
    "q",
    "orderBy",
    "iCalUID",
    "privateExtendedProperty",
    "sharedExtendedProperty",
]
# Query parameters that do not change which entries a list returns (left out of page tokens).
COSMETIC_PARAMETERS = {
    "pageToken",
    "maxResults",
    "fields",
    "prettyPrint",
    "key",
    "quotaUser",
    "userIp",
    "alt",
    "oauth_token",
    "maxAttendees",
    "alwaysIncludeEmail",
    "timeZone",
}
CANONICAL_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ABORTED",
    410: "GONE",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
USAGE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}
OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_token",
    "redirect_uri_mismatch",
}


# --- the discovery document ---------------------------------------------------------------

DISCOVERY_PATH = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"
)


@functools.cache
def discovery() -> dict[str, Any]:
    return json.loads(DISCOVERY_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Method:
    id: str  # without the "calendar." prefix: "events.list"
    http_method: str
    path: str  # under servicePath: "calendars/{calendarId}/events"
    parameters: dict[str, Any]
    scopes: frozenset[str]
    request: str | None  # schema names
    response: str | None

    @property
    def endpoint(self) -> str:
        return f"google.{self.id}"

    def pattern(self) -> str:
        segments = []
        for segment in self.path.split("/"):
            match = re.fullmatch(r"\{\+?(\w+)\}", segment)
            segments.append(f"(?P<{match[1]}>[^/]+)" if match else re.escape(segment))
        return "/" + re.escape(discovery()["servicePath"]) + "/".join(segments)


@functools.cache
def methods() -> tuple[Method, ...]:
    found: list[Method] = []

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for spec in resource.get("methods", {}).values():
                found.append(
                    Method(
                        id=spec["id"].removeprefix("calendar."),
                        http_method=spec["httpMethod"],
                        path=spec["path"],
                        parameters=spec.get("parameters", {}),
                        scopes=frozenset(spec.get("scopes", [])),
                        request=(spec.get("request") or {}).get("$ref"),
                        response=(spec.get("response") or {}).get("$ref"),
                    )
                )
            walk(resource.get("resources", {}))

    walk(discovery()["resources"])
    # Literal segments first: "events/watch" must not be taken for "events/{eventId}".
    return tuple(sorted(found, key=lambda method: method.path.count("{")))


@functools.cache
def schema_fields(name: str) -> frozenset[str]:
    return frozenset(discovery()["schemas"][name]["properties"])


# Event fields kept as given in `Event.extra`; the others are computed or read-only.
EVENT_EXTRA_FIELDS = schema_fields("Event") - {
    "kind",
    "etag",
    "id",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "organizer",
    "hangoutLink",
    "recurringEventId",
    "originalStartTime",
    "privateCopy",
    "locked",
    "iCalUID",
    "summary",
    "description",
    "location",
    "start",
    "end",
    "status",
    "eventType",
    "recurrence",
    "extendedProperties",
    "conferenceData",
}


# --- errors ---------------------------------------------------------------------------------


class GoogleError(HTTPError):
    """An error in Google's JSON shape, with the optional details of `errors[0]`."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        location: str | None = None,
        location_type: str = "parameter",
        domain: str | None = None,
        summary: str | None = None,  # the top-level message, when it differs from errors[0]'s
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, reason, message, headers=headers)
        self.location = location
        self.location_type = location_type
        self.domain = domain
        self.summary = summary


def invalid_parameter(name: str, message: str) -> GoogleError:
    return GoogleError(400, "invalidParameter", message, location=name)


def not_found() -> GoogleError:
    return GoogleError(404, "notFound", "Not Found")


def google_error(error: HTTPError) -> Response:
    """Any HTTPError (the handlers' own, or a fault rule's) as Google renders errors."""
    domain = getattr(error, "domain", None) or (
        "usageLimits" if error.reason in USAGE_LIMIT_REASONS else "global"
    )
    item: dict[str, Any] = {"message": error.message, "domain": domain, "reason": error.reason}
    summary = getattr(error, "summary", None) or error.message
    location = getattr(error, "location", None)
    headers = dict(error.headers)
    if error.status == 401:
        location = location or "Authorization"
        item.update(locationType="header", location=location)
        summary = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project."
        )
        headers.setdefault(
            "WWW-Authenticate", 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
        )
    elif location:
        item.update(locationType=getattr(error, "location_type", "parameter"), location=location)
    status = CANONICAL_STATUS.get(error.status, "UNKNOWN")
    if error.reason == "duplicate":
        status = "ALREADY_EXISTS"
    body = {"error": {"code": error.status, "message": summary, "errors": [item], "status": status}}
    return Response.json(body, error.status, headers)


def oauth_error(error: HTTPError) -> Response:
    """The token and revocation endpoints answer in OAuth's shape (RFC 6749, section 5.2)."""
    reason = error.reason
    if reason not in OAUTH_ERRORS:  # a fault rule's error
        reason = {
            401: "invalid_client",
            429: "rate_limit_exceeded",
            503: "temporarily_unavailable",
        }.get(error.status, "internal_failure" if error.status >= 500 else "invalid_request")
    response = Response.json(
        {"error": reason, "error_description": error.message}, error.status, error.headers
    )
    response.headers.setdefault("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
    return response


def page_error(error: HTTPError) -> Response:
    """Errors of the consent page are pages, as at accounts.google.com."""
    response = Response.html(
        _page(
            "Access blocked: authorization error",
            f"<h1>Access blocked: authorization error</h1>"
            f'<p id="error-message">{html.escape(error.message)}</p>'
            f'<p id="error-code">Error {error.status}: {html.escape(error.reason)}</p>',
        ),
        error.status,
    )
    response.headers.update(error.headers)
    return response


# --- formats --------------------------------------------------------------------------------


def rfc3339_ms(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_rfc3339(value: str) -> datetime | None:
    """An RFC 3339 timestamp with its offset, as Google demands; None if it is not one."""
    if "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def zone_or_none(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _coerce(name: str, spec: dict[str, Any], value: str) -> Any:
    """A query parameter converted to its declared type, or a 400 as Google words it."""
    kind = spec.get("type", "string")
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", value):
            pattern = r"'-?\d+'"
            raise invalid_parameter(
                name, f"Invalid value '{value}'. Values must match the regular expression {pattern}"
            )
        number = int(value)
        low, high = spec.get("minimum"), spec.get("maximum")
        if (low is not None and number < int(low)) or (high is not None and number > int(high)):
            bounds = f"[{low if low is not None else ''}, {high if high is not None else ''}]"
            raise invalid_parameter(
                name, f"Invalid value '{value}'. Values must be within the range: {bounds}"
            )
        return number
    if kind == "boolean":
        if value.lower() not in {"true", "false"}:
            raise invalid_parameter(
                name, f"Invalid value '{value}'. Values must be one of: true, false"
            )
        return value.lower() == "true"
    if spec.get("format") == "date-time":
        parsed = parse_rfc3339(value)
        if parsed is None:
            raise invalid_parameter(
                name,
                f"Invalid value '{value}' for {name}: it must be an RFC 3339 timestamp with a "
                "time zone offset, for example 2011-06-03T10:00:00-07:00 or "
                "2011-06-03T10:00:00Z.",
            )
        return parsed
    if "enum" in spec and value not in spec["enum"]:
        raise invalid_parameter(
            name, f"Invalid value '{value}'. Values must be one of: {', '.join(spec['enum'])}"
        )
    return value


def validate(method: Method, request: Request) -> dict[str, Any]:
    """The request's parameters, typed, checked against the discovery document."""
    standard = discovery()["parameters"]
    values: dict[str, Any] = {}
    for name, given in request.query.items():
        spec = method.parameters.get(name) or standard.get(name)
        if spec is None or spec.get("location") == "path":
            raise invalid_parameter(
                name,
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query '
                f"parameter. Field '{name}' could not be found in request message.",
            )
        converted = [_coerce(name, spec, value) for value in given]
        values[name] = converted if spec.get("repeated") else converted[-1]
    for name, spec in method.parameters.items():
        if spec.get("location") == "path":
            values[name] = unquote(request.params[name])
        elif spec.get("required") and name not in values:
            raise GoogleError(400, "required", f"Required parameter: {name}", location=name)
    return values


class FieldSelector:
    """The `fields` query parameter (partial responses): "items(id,summary),nextPageToken"."""

    def __init__(self, spec: str) -> None:
        self.text = spec
        self.position = 0
        self.tree = self._list()
        if self.position != len(self.text):
            raise self._error()

    def _error(self) -> GoogleError:
        return invalid_parameter("fields", f"Invalid field selection {self.text}")

    def _list(self) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        while True:
            path = self._name().split("/")
            node = tree
            for part in path[:-1]:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
            sub: Any = None
            if self.text.startswith("(", self.position):
                self.position += 1
                sub = self._list()
                if not self.text.startswith(")", self.position):
                    raise self._error()
                self.position += 1
            node[path[-1]] = sub
            if not self.text.startswith(",", self.position):
                return tree
            self.position += 1

    def _name(self) -> str:
        match = re.compile(r"[A-Za-z0-9_*/.@$-]+").match(self.text, self.position)
        if match is None:
            raise self._error()
        self.position = match.end()
        return match.group()

    def apply(self, value: Any, tree: dict[str, Any] | None = None) -> Any:
        tree = self.tree if tree is None else tree
        if isinstance(value, list):
            return [self.apply(item, tree) for item in value]
        if not isinstance(value, dict):
            return value
        if "*" in tree:
            return value
        return {
            key: item if tree[key] is None else self.apply(item, tree[key])
            for key, item in value.items()
            if key in tree
        }


# --- signing keys -------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: bytes
    certificate_pem: str
    jwk: dict[str, Any]


@functools.cache
def signing_key() -> SigningKey:
    """One RSA key per process, with the self-signed certificate /oauth2/v1/certs serves."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox.accounts.google.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=14))
        .sign(key, hashes.SHA256())
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = hashlib.sha1(public_der).hexdigest()  # noqa: S324 (an identifier, as Google's are)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig", alg="RS256")
    return SigningKey(
        kid=kid,
        private_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        jwk=jwk,
    )


# --- OAuth state ----------------------------------------------------------------------------


@dataclass
class Grant:
    """What one code exchange created: a refresh token (offline access) and access tokens."""

    id: str
    email: str
    client_id: str
    scopes: tuple[str, ...]
    refresh_token: str | None
    nonce: str | None = None
    created: float = field(default_factory=time.time)
    revoked: bool = False


@dataclass
class AccessToken:
    value: str
    grant: Grant
    expires_at: float

    def valid(self) -> bool:
        return not self.grant.revoked and time.time() < self.expires_at


@dataclass
class AuthCode:
    value: str
    client_id: str
    redirect_uri: str
    email: str
    scopes: tuple[str, ...]
    challenge: str | None
    challenge_method: str
    offline: bool  # whether the exchange issues a refresh token
    nonce: str | None
    expires_at: float
    used: bool = False
    grant: Grant | None = None


@dataclass
class AuthRequest:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    offline: bool
    prompt: set[str]
    login_hint: str
    challenge: str | None
    challenge_method: str
    nonce: str | None
    include_granted: bool
    raw: dict[str, str]


@dataclass
class Channel:
    id: str
    resource_id: str
    resource_uri: str
    email: str
    calendar_id: str
    address: str
    token: str | None
    expiration: int  # milliseconds since the epoch
    number: int = 0
    stopped: bool = False

    def live(self) -> bool:
        return not self.stopped and time.time() * 1000 < self.expiration


@dataclass
class Call:
    """One authenticated, validated Calendar API request."""

    request: Request
    method: Method
    account: Account
    token: AccessToken
    params: dict[str, Any]
    body: dict[str, Any]


# --- push notifications -------------------------------------------------------------------


class Notifier:
    """Delivers channel notifications from one worker thread, never from the request's."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.queue: queue.Queue[tuple[Channel, str] | None] = queue.Queue()
        self.pending: set[tuple[str, str]] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.session = requests.Session()

    def push(self, channel: Channel, state: str) -> None:
        with self.lock:
            # Changes that arrive while a notification waits are covered by it.
            if (channel.id, state) in self.pending:
                return
            self.pending.add((channel.id, state))
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="sandbox-google-push", daemon=True
                )
                self.thread.start()
        self.queue.put((channel, state))

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            channel, state = item
            with self.lock:
                self.pending.discard((channel.id, state))
            if channel.live():
                self._deliver(channel, state)

    def _deliver(self, channel: Channel, state: str) -> None:
        channel.number += 1
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": formatdate(channel.expiration / 1000, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.number),
            "Content-Type": "application/json; charset=UTF-8",
        }
        if channel.token:
            headers["X-Goog-Channel-Token"] = channel.token
        try:
            self.session.post(channel.address, data=b"", headers=headers, timeout=self.timeout)
        except requests.RequestException as error:
            logger.info("push notification to channel %s failed: %s", channel.id, error)

    def stop(self) -> None:
        with self.lock:
            thread, self.thread = self.thread, None
        if thread is not None:
            self.queue.put(None)
            thread.join(timeout=self.timeout + 1)
        self.session.close()


# --- the provider -------------------------------------------------------------------------


class GoogleSandbox:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.lock = threading.Lock()  # OAuth state and channels
        self.codes: dict[str, AuthCode] = {}
        self.grants: list[Grant] = []
        self.refresh_tokens: dict[str, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.channels: dict[str, Channel] = {}
        self.secret = secrets.token_bytes(32)  # signs page and sync tokens
        self.notifier = Notifier(sandbox.options.notification_timeout)
        self.pages = Router(errors=page_error)
        self.oauth = Router(errors=oauth_error)
        self.router = Router(errors=google_error)
        self._install_oauth()
        self._install_api()
        self.store.on_change(self._on_change)

    @property
    def routers(self) -> list[Router]:
        return [self.pages, self.oauth, self.router]

    # --- the interface the core and the control API use ------------------------------------

    def revoke_account(self, account: Account) -> None:
        """Every grant of `account` is revoked: its refresh tokens give invalid_grant."""
        with self.lock:
            for grant in self.grants:
                if grant.email == account.email:
                    grant.revoked = True
            for code in self.codes.values():
                if code.email == account.email:
                    code.used = True

    def issued_tokens(self) -> set[str]:
        """Every access and refresh token handed out, for tests that look for leaks."""
        with self.lock:
            return set(self.access_tokens) | set(self.refresh_tokens)

    def expire_access_tokens(self, account: Account) -> None:
        """Every access token of `account` is refused from now on (401)."""
        with self.lock:
            for token in self.access_tokens.values():
                if token.grant.email == account.email:
                    token.expires_at = 0

    def stop(self) -> None:
        """Stops background work (push notifications)."""
        self.notifier.stop()

    # --- tokens, sealed -------------------------------------------------------------------

    def _seal(self, kind: str, data: Any) -> str:
        payload = json.dumps([kind, data], separators=(",", ":")).encode()
        signature = hmac.new(self.secret, payload, hashlib.sha256).digest()[:12]
        return _b64(payload) + "." + _b64(signature)

    def _unseal(self, kind: str, token: str) -> Any:
        """The data sealed in `token`, or None for anything forged, garbled or of another kind."""
        payload_text, _, signature_text = token.partition(".")
        try:
            payload, signature = _unb64(payload_text), _unb64(signature_text)
            expected = hmac.new(self.secret, payload, hashlib.sha256).digest()[:12]
            if not hmac.compare_digest(signature, expected):
                return None
            found_kind, data = json.loads(payload)
        except (ValueError, TypeError):
            return None
        return data if found_kind == kind else None

    # --- identification (fault rules match on accounts before handlers run) ---------------

    def _account_of_token(self, value: str | None) -> Account | None:
        record = self.access_tokens.get(value) if value else None
        return self.store.account(record.grant.email) if record else None

    def _identify_bearer(self, request: Request) -> Account | None:
        try:
            return self._account_of_token(request.bearer() or request.arg("oauth_token"))
        except Exception:
            return None

    def _identify_token_request(self, request: Request) -> Account | None:
        try:
            form = _form(request)
            grant = self.refresh_tokens.get(form.get("refresh_token", ""))
            if grant is not None:
                return self.store.account(grant.email)
            code = self.codes.get(form.get("code", ""))
            return self.store.account(code.email) if code else None
        except Exception:
            return None

    def _identify_auth(self, request: Request) -> Account | None:
        try:
            source = request.form() if request.method == "POST" else {}
            email = source.get("account") or request.arg("login_hint") or ""
            return self.store.account(email) if email else None
        except Exception:
            return None

    def _identify_revoke(self, request: Request) -> Account | None:
        try:
            value = request.arg("token") or _form(request).get("token", "")
            grant = self.refresh_tokens.get(value)
            if grant is not None:
                return self.store.account(grant.email)
            return self._account_of_token(value)
        except Exception:
            return None

    # --- OAuth ----------------------------------------------------------------------------

    def _install_oauth(self) -> None:
        pages, oauth = self.pages, self.oauth
        pages.route("GET", r"/o/oauth2/v2/auth", "google.auth", identify=self._identify_auth)(
            self._auth_get
        )
        pages.route("POST", r"/o/oauth2/v2/auth", "google.auth", identify=self._identify_auth)(
            self._auth_post
        )
        oauth.route("POST", r"/token", "google.token", identify=self._identify_token_request)(
            self._token
        )
        oauth.route("POST", r"/revoke", "google.revoke", identify=self._identify_revoke)(
            self._revoke
        )
        oauth.route("GET", r"/oauth2/v1/certs", "google.certs")(self._certs_v1)
        oauth.route("GET", r"/oauth2/v3/certs", "google.certs")(self._certs_v3)
        oauth.route(
            "GET", r"/oauth2/v3/userinfo", "google.userinfo", identify=self._identify_bearer
        )(self._userinfo)
        oauth.route("GET", r"/\.well-known/openid-configuration", "google.openid")(
            self._openid_configuration
        )

    def _auth_request(self, source: dict[str, str]) -> AuthRequest:
        """The authorization request's parameters, checked as Google checks them."""
        for name in source:
            if name not in AUTH_PARAMETERS:
                raise HTTPError(
                    400, "invalid_request", f"Parameter not allowed for this message type: {name}"
                )
        client_id = source.get("client_id", "")
        if not client_id:
            raise HTTPError(400, "invalid_request", "Missing required parameter: client_id")
        if client_id not in self.sandbox.options.google_clients:
            raise HTTPError(400, "invalid_client", "The OAuth client was not found.")
        redirect_uri = source.get("redirect_uri", "")
        if not redirect_uri:
            raise HTTPError(400, "invalid_request", "Missing required parameter: redirect_uri")
        parts = urlsplit(redirect_uri)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.fragment:
            raise HTTPError(
                400,
                "redirect_uri_mismatch",
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 "
                "policy: the redirect URI must be an absolute http(s) URI without a fragment.",
            )
        response_type = source.get("response_type", "")
        if not response_type:
            raise HTTPError(400, "invalid_request", "Missing required parameter: response_type")
        if response_type != "code":
            raise HTTPError(
                400,
                "unsupported_response_type",
                f"The sandbox only issues authorization codes, not {response_type!r}.",
            )
        requested = source.get("scope", "").split()
        if not requested:
            raise HTTPError(400, "invalid_request", "Missing required parameter: scope")
        known = set(IDENTITY_SCOPES) | set(discovery()["auth"]["oauth2"]["scopes"])
        unknown = [s for s in requested if SCOPE_ALIASES.get(s, s) not in known]
        if unknown:
            raise HTTPError(
                400,
                "invalid_scope",
                f"Some requested scopes were invalid. {{invalid=[{', '.join(unknown)}]}}",
            )
        access_type = source.get("access_type", "online")
        if access_type not in {"online", "offline"}:
            raise HTTPError(400, "invalid_request", f"Invalid access_type: {access_type}")
        prompt = set(source.get("prompt", "").split())
        if not prompt <= {"none", "consent", "select_account"} or (
            "none" in prompt and len(prompt) > 1
        ):
            raise HTTPError(400, "invalid_request", f"Invalid prompt: {source.get('prompt')}")
        challenge = source.get("code_challenge") or None
        method = source.get("code_challenge_method") or ("plain" if challenge else "")
        if method and not challenge:
            raise HTTPError(400, "invalid_request", "Missing code_challenge.")
        if challenge and method not in {"S256", "plain"}:
            raise HTTPError(400, "invalid_request", "Invalid code_challenge_method.")
        if challenge and not re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", challenge):
            raise HTTPError(400, "invalid_request", "Invalid code_challenge.")
        return AuthRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=normalize_scopes(requested),
            state=source.get("state"),
            offline=access_type == "offline",
            prompt=prompt,
            login_hint=source.get("login_hint", ""),
            challenge=challenge,
            challenge_method=method,
            nonce=source.get("nonce") or None,
            include_granted=source.get("include_granted_scopes") == "true",
            raw={k: v for k, v in source.items() if k in AUTH_PARAMETERS},
        )

    def _auth_get(self, request: Request) -> Response:
        auth = self._auth_request({k: v[-1] for k, v in request.query.items()})
        if "none" in auth.prompt:
            return self._auth_silently(auth)
        return Response.html(self._consent_page(auth))

    def _auth_post(self, request: Request) -> Response:
        form = request.form()
        decision = form.pop("decision", "")
        email = form.pop("account", "")
        auth = self._auth_request(form)
        if decision == "deny":
            return _redirect(auth.redirect_uri, error="access_denied", state=auth.state)
        if decision != "allow":
            return Response.html(self._consent_page(auth, "Choose Allow or Deny."), 400)
        account = self.store.account(email) if email else None
        if account is None or account.provider != GOOGLE:
            return Response.html(self._consent_page(auth, "Choose an account."), 400)
        return self._issue_code(auth, account)

    def _auth_silently(self, auth: AuthRequest) -> Response:
        """prompt=none: a code only for an account that already granted these scopes."""
        account = self.store.account(auth.login_hint) if auth.login_hint else None
        if account is None:
            return _redirect(auth.redirect_uri, error="interaction_required", state=auth.state)
        if not set(auth.scopes) <= self._granted_scopes(account.email, auth.client_id):
            return _redirect(auth.redirect_uri, error="consent_required", state=auth.state)
        return self._issue_code(auth, account)

    def _granted_scopes(self, email: str, client_id: str) -> set[str]:
        with self.lock:
            return {
                scope
                for grant in self.grants
                if grant.email == email and grant.client_id == client_id and not grant.revoked
                for scope in grant.scopes
            }

    def _issue_code(self, auth: AuthRequest, account: Account) -> Response:
        scopes = set(auth.scopes)
        if auth.include_granted:
            scopes |= self._granted_scopes(account.email, auth.client_id)
        with self.lock:
            # Google issues a refresh token on the first consent only, unless prompt=consent.
            has_refresh = any(
                g.email == account.email
                and g.client_id == auth.client_id
                and g.refresh_token
                and not g.revoked
                for g in self.grants
            )
            code = AuthCode(
                value="4/0A" + secrets.token_urlsafe(48),
                client_id=auth.client_id,
                redirect_uri=auth.redirect_uri,
                email=account.email,
                scopes=tuple(sorted(scopes)),
                challenge=auth.challenge,
                challenge_method=auth.challenge_method,
                offline=auth.offline and ("consent" in auth.prompt or not has_refresh),
                nonce=auth.nonce,
                expires_at=time.time() + self.sandbox.options.code_lifetime,
            )
            self.codes[code.value] = code
        return _redirect(
            auth.redirect_uri,
            state=auth.state,
            iss=ISSUER,
            code=code.value,
            scope=" ".join(code.scopes),
            authuser="0",
            prompt="consent",
        )

    def _consent_page(self, auth: AuthRequest, problem: str = "") -> str:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in auth.raw.items()
        )
        accounts = []
        for index, account in enumerate(self.store.accounts_of(GOOGLE)):
            checked = " checked" if account.email == auth.login_hint.lower() else ""
            accounts.append(
                f'<div class="choice"><input type="radio" name="account" id="account-{index}" '
                f'value="{html.escape(account.email)}" required{checked}> '
                f'<label for="account-{index}">{html.escape(account.name)} '
                f'<span class="email">{html.escape(account.email)}</span></label></div>'
            )
        descriptions = {
            **{k: v["description"] for k, v in discovery()["auth"]["oauth2"]["scopes"].items()},
            **IDENTITY_SCOPES,
        }
        scopes = "".join(
            f'<li><span class="scope-text">{html.escape(descriptions.get(s, s))}</span> '
            f"<code>{html.escape(s)}</code></li>"
            for s in auth.scopes
        )
        alert = f'<p role="alert" id="problem">{html.escape(problem)}</p>' if problem else ""
        body = (
            f"<h1>Sign in with Google (sandbox)</h1>"
            f'<p>to continue to <strong id="client">{html.escape(auth.client_id)}</strong>, '
            f"which will return you to <code>{html.escape(auth.redirect_uri)}</code></p>"
            f"{alert}"
            f'<form method="post" action="/o/oauth2/v2/auth" id="consent">{hidden}'
            f"<fieldset><legend>Choose an account</legend>{''.join(accounts)}</fieldset>"
            f'<h2 id="scopes-heading">This app wants to</h2>'
            f'<ul id="scopes" aria-labelledby="scopes-heading">{scopes}</ul>'
            f'<div class="buttons">'
            f'<button type="submit" name="decision" value="deny" id="deny" formnovalidate>'
            f"Deny</button> "
            f'<button type="submit" name="decision" value="allow" id="allow">Allow</button>'
            f"</div></form>"
        )
        return _page("Sign in - Google Accounts (sandbox)", body)

    def _client(self, request: Request, form: dict[str, str]) -> str:
        """The authenticated client id (HTTP Basic or the body), or invalid_client."""
        header = request.headers.get("authorization", "")
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except ValueError as error:
                raise HTTPError(401, "invalid_client", "Unauthorized") from error
            user, _, password = decoded.partition(":")
            client_id, secret = unquote_plus(user), unquote_plus(password)
        if not client_id:
            raise HTTPError(400, "invalid_request", "Could not determine client ID from request.")
        expected = self.sandbox.options.google_clients.get(client_id)
        if expected is None:
            raise HTTPError(401, "invalid_client", "The OAuth client was not found.")
        if secret is None or not hmac.compare_digest(secret, expected):
            raise HTTPError(401, "invalid_client", "Unauthorized")
        return client_id

    def _token(self, request: Request) -> Response:
        form = _form(request)
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise HTTPError(400, "invalid_request", "Required parameter is missing: grant_type")
        if grant_type not in {"authorization_code", "refresh_token"}:
            raise HTTPError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        client_id = self._client(request, form)
        if grant_type == "authorization_code":
            return self._exchange_code(form, client_id)
        return self._refresh(form, client_id)

    def _exchange_code(self, form: dict[str, str], client_id: str) -> Response:
        value = form.get("code", "")
        if not value:
            raise HTTPError(400, "invalid_request", "Missing required parameter: code")
        with self.lock:
            code = self.codes.get(value)
            if code is None:
                raise HTTPError(400, "invalid_grant", "Malformed auth code.")
            if code.used:
                # A code presented twice is taken for a stolen one: what it gave is revoked.
                if code.grant is not None:
                    code.grant.revoked = True
                raise HTTPError(400, "invalid_grant", "Bad Request")
            if time.time() >= code.expires_at:
                raise HTTPError(400, "invalid_grant", "Bad Request")
            if code.client_id != client_id:
                raise HTTPError(400, "invalid_grant", "Bad Request")
            if form.get("redirect_uri", "") != code.redirect_uri:
                raise HTTPError(400, "redirect_uri_mismatch", "Bad Request")
            if code.challenge is not None:
                verifier = form.get("code_verifier", "")
                if not verifier:
                    raise HTTPError(400, "invalid_grant", "Missing code verifier.")
                computed = (
                    _b64(hashlib.sha256(verifier.encode()).digest())
                    if code.challenge_method == "S256"
                    else verifier
                )
                if not hmac.compare_digest(computed, code.challenge):
                    raise HTTPError(400, "invalid_grant", "Invalid code verifier.")
            code.used = True
            grant = Grant(
                id=secrets.token_hex(8),
                email=code.email,
                client_id=client_id,
                scopes=code.scopes,
                refresh_token="1//0" + secrets.token_urlsafe(64) if code.offline else None,
                nonce=code.nonce,
            )
            code.grant = grant
            self.grants.append(grant)
            if grant.refresh_token:
                self.refresh_tokens[grant.refresh_token] = grant
                self._limit_refresh_tokens(grant)
        return Response.json(self._token_response(grant, grant.scopes, with_refresh=True))

    def _limit_refresh_tokens(self, newest: Grant) -> None:
        live = [
            g
            for g in self.grants
            if g.email == newest.email
            and g.client_id == newest.client_id
            and g.refresh_token
            and not g.revoked
        ]
        for grant in live[: max(0, len(live) - REFRESH_TOKENS_PER_CLIENT)]:
            grant.revoked = True

    def _refresh(self, form: dict[str, str], client_id: str) -> Response:
        value = form.get("refresh_token", "")
        if not value:
            raise HTTPError(400, "invalid_request", "Missing required parameter: refresh_token")
        with self.lock:
            grant = self.refresh_tokens.get(value)
            if grant is None or grant.client_id != client_id:
                raise HTTPError(400, "invalid_grant", "Bad Request")
            if grant.revoked:
                raise HTTPError(400, "invalid_grant", "Token has been expired or revoked.")
        scopes = grant.scopes
        if form.get("scope"):
            asked = normalize_scopes(form["scope"].split())
            if not set(asked) <= set(grant.scopes):
                raise HTTPError(400, "invalid_scope", "Bad Request")
            scopes = asked
        return Response.json(self._token_response(grant, scopes, with_refresh=False))

    def _token_response(
        self, grant: Grant, scopes: tuple[str, ...], *, with_refresh: bool
    ) -> dict[str, Any]:
        lifetime = self.sandbox.options.access_token_lifetime
        token = AccessToken("ya29.a0" + secrets.token_urlsafe(96), grant, time.time() + lifetime)
        with self.lock:
            self.access_tokens[token.value] = token
        body: dict[str, Any] = {
            "access_token": token.value,
            "expires_in": lifetime,
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }
        if with_refresh and grant.refresh_token:
            body["refresh_token"] = grant.refresh_token
        if "openid" in scopes:
            body["id_token"] = self._id_token(grant, token.value)
        return body

    def _id_token(self, grant: Grant, access_token: str) -> str:
        account = self.store.account(grant.email)
        if account is None:
            raise HTTPError(400, "invalid_grant", "Bad Request")
        now = int(time.time())
        digest = hashlib.sha256(access_token.encode()).digest()
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "azp": grant.client_id,
            "aud": grant.client_id,
            "sub": account.uid,
            "at_hash": _b64(digest[:16]),
            "iat": now,
            "exp": now + 3600,
        }
        if USERINFO_EMAIL in grant.scopes:
            claims.update(email=account.email, email_verified=True)
        if USERINFO_PROFILE in grant.scopes:
            claims.update(self._profile(account))
        if grant.nonce:
            claims["nonce"] = grant.nonce
        key = signing_key()
        return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid})

    def _profile(self, account: Account) -> dict[str, str]:
        given, _, family = account.name.partition(" ")
        return {
            "name": account.name,
            "given_name": given,
            "family_name": family,
            "picture": f"https://lh3.googleusercontent.test/a/{account.uid}=s96-c",
        }

    def _revoke(self, request: Request) -> Response:
        value = request.arg("token") or _form(request).get("token", "")
        with self.lock:
            grant = self.refresh_tokens.get(value)
            if grant is None and value in self.access_tokens:
                grant = self.access_tokens[value].grant
            if grant is None or grant.revoked:
                raise HTTPError(400, "invalid_token", "Token expired or revoked")
            grant.revoked = True
        return Response.json({})

    def _certs_v1(self, request: Request) -> Response:
        key = signing_key()
        return Response.json(
            {key.kid: key.certificate_pem}, headers={"Cache-Control": "public, max-age=3600"}
        )

    def _certs_v3(self, request: Request) -> Response:
        return Response.json(
            {"keys": [signing_key().jwk]}, headers={"Cache-Control": "public, max-age=3600"}
        )

    def _userinfo(self, request: Request) -> Response:
        token = self._access_token(request)
        account = self.store.account(token.grant.email)
        if account is None:
            raise GoogleError(401, "authError", "Invalid Credentials")
        info: dict[str, Any] = {"sub": account.uid}
        if USERINFO_PROFILE in token.grant.scopes:
            info.update(self._profile(account))
        if USERINFO_EMAIL in token.grant.scopes:
            info.update(email=account.email, email_verified=True)
        return Response.json(info)

    def _openid_configuration(self, request: Request) -> Response:
        base = request.base_url
        return Response.json(
            {
                "issuer": ISSUER,
                "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/oauth2/v3/userinfo",
                "revocation_endpoint": f"{base}/revoke",
                "jwks_uri": f"{base}/oauth2/v3/certs",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "code_challenge_methods_supported": ["plain", "S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            }
        )

    def _access_token(self, request: Request) -> AccessToken:
        value = request.bearer() or request.arg("oauth_token")
        token = self.access_tokens.get(value) if value else None
        if token is None or not token.valid():
            raise GoogleError(401, "authError", "Invalid Credentials")
        return token

    # --- Calendar API: routing ----------------------------------------------------------------

    def _install_api(self) -> None:
        implemented: dict[str, Callable[[Call], Response]] = {
            "calendarList.list": self._calendar_list_list,
            "calendarList.get": self._calendar_list_get,
            "calendars.get": self._calendars_get,
            "events.list": self._events_list,
            "events.get": self._events_get,
            "events.insert": self._events_insert,
            "events.patch": self._events_patch,
            "events.update": self._events_update,
            "events.delete": self._events_delete,
            "events.instances": self._events_instances,
            "events.watch": self._events_watch,
            "channels.stop": self._channels_stop,
        }
        for method in methods():
            self.router.route(
                method.http_method,
                method.pattern(),
                method.endpoint,
                identify=self._identify_bearer,
            )(self._api_handler(method, implemented.get(method.id)))
        self.router.route(
            "POST", r"/batch/calendar/v3", "google.batch", identify=self._identify_bearer
        )(self._batch)
        for verb in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.router.route(verb, r"/calendar/v3(/.*)?", "google.unknown")(self._unknown_path)

    def _unknown_path(self, request: Request) -> Response:
        raise not_found()

    def _api_handler(
        self, method: Method, implementation: Callable[[Call], Response] | None
    ) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            token = self._access_token(request)
            params = validate(method, request)
            if "timeZone" in params and zone_or_none(params["timeZone"]) is None:
                raise invalid_parameter("timeZone", f"Invalid time zone: {params['timeZone']}")
            if not method.scopes.intersection(token.grant.scopes):
                scope = " ".join(sorted(method.scopes))
                challenge = (
                    'Bearer realm="https://accounts.google.com/", error="insufficient_scope", '
                    f'scope="{scope}"'
                )
                raise GoogleError(
                    403,
                    "insufficientPermissions",
                    "Insufficient Permission",
                    summary="Request had insufficient authentication scopes.",
                    headers={"WWW-Authenticate": challenge},
                )
            if implementation is None:
                raise GoogleError(
                    501,
                    "notImplemented",
                    f"The sandbox does not emulate calendar.{method.id}.",
                )
            account = self.store.account(token.grant.email)
            if account is None:
                raise GoogleError(401, "authError", "Invalid Credentials")
            request.account = account
            selector = FieldSelector(params["fields"]) if params.get("fields") else None
            call = Call(request, method, account, token, params, _json_body(method, request))
            response = implementation(call)
            if selector is not None and response.body:
                response.body = json.dumps(
                    selector.apply(json.loads(response.body)), ensure_ascii=False
                ).encode()
            return response

        return handle

    def _calendar(self, call: Call, *, write: bool = False) -> Calendar:
        wanted = call.params["calendarId"]
        account = call.account
        if wanted == "primary":
            calendar = account.primary
        else:
            calendar = account.calendars.get(wanted) or account.calendars.get(wanted.lower())
        if calendar is None:
            raise not_found()
        if write and not calendar.can_edit:
            raise GoogleError(
                403, "requiredAccessLevel", "You need to have writer access to this calendar."
            )
        return calendar

    # --- Calendar API: calendars ----------------------------------------------------------------

    def _calendar_list_entry(self, calendar: Calendar) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "kind": "calendar#calendarListEntry",
            "etag": _etag(f"{calendar.id}:{calendar.name}:{calendar.color}"),
            "id": calendar.id,
            "summary": calendar.name,
            "timeZone": calendar.time_zone,
            "colorId": "14" if calendar.primary else "9",
            "backgroundColor": calendar.color,
            "foregroundColor": "#000000",
            "selected": True,
            "accessRole": _role(calendar),
            "defaultReminders": ([{"method": "popup", "minutes": 10}] if calendar.primary else []),
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        }
        if calendar.primary:
            entry["primary"] = True
            entry["notificationSettings"] = {
                "notifications": [{"type": "eventCreation", "method": "email"}]
            }
        return entry

    def _calendar_list_list(self, call: Call) -> Response:
        params = call.params
        ranks = {
            "freeBusyReader": 0,
            "reader": 1,
            "writerWithoutPrivateAccess": 2,
            "writer": 2,
            "owner": 3,
        }
        minimum = ranks.get(params.get("minAccessRole", "freeBusyReader"), 0)
        calendars = sorted(
            call.account.calendars.values(), key=lambda c: (not c.primary, c.name.lower(), c.id)
        )
        calendars = [c for c in calendars if ranks[_role(c)] >= minimum]
        kind = f"calendarList:{call.account.email}"
        if "syncToken" in params:
            # Calendars never change in the sandbox: an incremental list is empty.
            if self._unseal(kind, params["syncToken"]) is None:
                raise full_sync_required()
            calendars = []
        size = min(params.get("maxResults", CALENDAR_LIST_PAGE_SIZE[0]), CALENDAR_LIST_PAGE_SIZE[1])
        start = 0
        if "pageToken" in params:
            start = self._unseal(f"{kind}:page", params["pageToken"])
            if not isinstance(start, int):
                raise invalid_parameter("pageToken", "Invalid page token value.")
        page = calendars[start : start + size]
        body: dict[str, Any] = {
            "kind": "calendar#calendarList",
            "etag": _etag(f"{call.account.email}:{len(calendars)}"),
            "items": [self._calendar_list_entry(c) for c in page],
        }
        if start + size < len(calendars):
            body["nextPageToken"] = self._seal(f"{kind}:page", start + size)
        else:
            body["nextSyncToken"] = self._seal(kind, self.store.seq)
        return Response.json(body)

    def _calendar_list_get(self, call: Call) -> Response:
        return Response.json(self._calendar_list_entry(self._calendar(call)))

    def _calendars_get(self, call: Call) -> Response:
        calendar = self._calendar(call)
        return Response.json(
            {
                "kind": "calendar#calendar",
                "etag": _etag(f"{calendar.id}:{calendar.name}"),
                "id": calendar.id,
                "summary": calendar.name,
                "timeZone": calendar.time_zone,
                "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
            }
        )

    # --- Calendar API: rendering events -------------------------------------------------------

    def _html_link(self, account: Account, calendar: Calendar, event: Event) -> str:
        event_id = event.id if PLAIN_ID.fullmatch(event.id) else quote(event.id, safe="")
        return (
            f"{self.sandbox.http_url}/_sandbox/events/{_quoted(account.email)}/"
            f"{_quoted(calendar.id)}/{event_id}"
        )

    def render(
        self,
        account: Account,
        calendar: Calendar,
        event: Event,
        *,
        zone: str | None = None,
        minimal: bool = False,
    ) -> dict[str, Any]:
        """An event in Google's JSON shape; `minimal` for the cancelled entries of lists."""
        cancelled = event.deleted or event.status == "cancelled"
        if minimal and cancelled:
            entry: dict[str, Any] = {
                "kind": "calendar#event",
                "etag": event.etag,
                "id": event.id,
                "status": "cancelled",
            }
            if event.is_occurrence and event.original_start is not None:
                entry["recurringEventId"] = event.series_id
                entry["originalStartTime"] = _when(event.original_start, event.time_zone, zone)
            return entry
        organizer: dict[str, Any] = {"email": account.email, "self": True}
        if not calendar.primary:
            organizer = {"email": calendar.id, "displayName": calendar.name, "self": True}
        body: dict[str, Any] = {
            "kind": "calendar#event",
            "etag": event.etag,
            "id": event.id,
            "status": "cancelled" if cancelled else event.status,
            "htmlLink": self._html_link(account, calendar, event),
            "created": rfc3339_ms(event.created),
            "updated": rfc3339_ms(event.updated),
            "summary": event.title,
        }
        if event.description:
            body["description"] = event.description
        if event.location:
            body["location"] = event.location
        body["creator"] = {"email": account.email, "self": True}
        body["organizer"] = organizer
        body["start"] = _when(event.start, event.time_zone, zone)
        body["end"] = _when(event.end, event.time_zone, zone)
        if event.is_master:
            body["recurrence"] = list(event.recurrence)
        if event.is_occurrence and event.original_start is not None:
            body["recurringEventId"] = event.series_id
            body["originalStartTime"] = _when(event.original_start, event.time_zone, zone)
        body["iCalUID"] = event.ical_uid
        body["sequence"] = event.extra.get("sequence", 0)
        if event.online_url:
            body.update(_conference(event.online_url))
        extended = dict(event.extra.get("extendedProperties") or {})
        if event.private_properties:
            extended["private"] = dict(event.private_properties)
        if extended:
            body["extendedProperties"] = extended
        body["reminders"] = event.extra.get("reminders") or {"useDefault": True}
        body["eventType"] = event.event_type
        for key, value in event.extra.items():
            if key in EVENT_EXTRA_FIELDS and key not in body:
                body[key] = value
        return body

    def _resource(self, event: Event) -> dict[str, Any]:
        """The writable fields of a stored event, the base a patch merges into."""
        resource: dict[str, Any] = dict(event.extra)
        resource.update(
            summary=event.title,
            start=_when(event.start, event.time_zone, None),
            end=_when(event.end, event.time_zone, None),
            status=event.status,
            eventType=event.event_type,
            iCalUID=event.ical_uid,
        )
        if event.description:
            resource["description"] = event.description
        if event.location:
            resource["location"] = event.location
        if event.recurrence:
            resource["recurrence"] = list(event.recurrence)
        extended = dict(event.extra.get("extendedProperties") or {})
        if event.private_properties:
            extended["private"] = dict(event.private_properties)
        if extended:
            resource["extendedProperties"] = extended
        if event.online_url:
            resource["conferenceData"] = _conference(event.online_url)["conferenceData"]
        return resource

    # --- Calendar API: listing events -----------------------------------------------------------

    def _events_list(self, call: Call) -> Response:
        params = call.params
        calendar = self._calendar(call)
        if "syncToken" in params:
            for name in NOT_WITH_SYNC_TOKEN:
                if name in params:
                    raise GoogleError(
                        400,
                        "badRequest",
                        f"Sync token cannot be used with other query parameters: {name} is "
                        "not allowed with syncToken.",
                        location=name,
                        location_type="parameter",
                    )
        single = params.get("singleEvents", False)
        if params.get("orderBy") == "startTime" and not single:
            raise GoogleError(
                400,
                "badRequest",
                "The requested ordering is not available for the particular query.",
                location="orderBy",
            )
        time_min, time_max = params.get("timeMin"), params.get("timeMax")
        if time_min and time_max and time_max <= time_min:
            raise GoogleError(
                400,
                "timeRangeEmpty",
                "The specified time range is empty.",
                location="timeMax",
                domain="calendar",
            )
        for name in ("privateExtendedProperty", "sharedExtendedProperty"):
            for constraint in params.get(name, []):
                if "=" not in constraint:
                    raise invalid_parameter(
                        name, f"Invalid value '{constraint}': expected propertyName=value."
                    )
        calendar_key = f"{call.account.email}/{calendar.id}"
        since = None
        if "syncToken" in params:
            data = self._unseal("sync", params["syncToken"])
            if (
                not isinstance(data, list)
                or len(data) != 2
                or data[0] != calendar_key
                or not isinstance(data[1], int)
                or data[1] < calendar.min_valid_seq
            ):
                raise full_sync_required()
            since = data[1]
        with self.store.lock:
            entries = list(calendar.events.values())
            snapshot = self.store.seq
        order = "changes" if since is not None else params.get("orderBy", "id")
        in_window = None
        if not single and since is None and ("timeMin" in params or "timeMax" in params):
            # A series master is in the window when one of its live occurrences is.
            in_window = {
                e.series_id
                for e in entries
                if e.is_occurrence
                and not (e.deleted or e.status == "cancelled")
                and _overlaps(e, params.get("timeMin"), params.get("timeMax"))
            }

        def include(event: Event) -> bool:
            return self._matches(
                event, calendar, params, since=since, single=single, series_in_window=in_window
            )

        return self._list_response(
            call, calendar, entries, include, order=order, snapshot=snapshot, since=since
        )

    def _matches(
        self,
        event: Event,
        calendar: Calendar,
        params: dict[str, Any],
        *,
        since: int | None,
        single: bool,
        series_in_window: set[str] | None = None,
    ) -> bool:
        if since is not None and event.seq <= since:
            return False
        cancelled = event.deleted or event.status == "cancelled"
        updated_min = params.get("updatedMin")
        show_deleted = since is not None or params.get("showDeleted", False)
        if updated_min is not None:
            if event.updated < updated_min:
                return False
            show_deleted = True  # "entries deleted since this time will always be included"
        if single:
            if event.is_master or (cancelled and not show_deleted):
                return False
        elif event.is_occurrence:
            # Only exceptions show beside their master; cancelled ones even without
            # showDeleted, as the reference says, unless the whole series is gone.
            master = calendar.events.get(event.series_id)
            if not event.is_exception or master is None or master.deleted:
                return False
        elif cancelled and not show_deleted:
            return False
        if "eventTypes" in params and event.event_type not in params["eventTypes"]:
            return False
        if since is not None:
            return True
        if "iCalUID" in params and event.ical_uid != params["iCalUID"]:
            return False
        for constraint in params.get("privateExtendedProperty", []):
            name, _, value = constraint.partition("=")
            if event.private_properties.get(name) != value:
                return False
        for constraint in params.get("sharedExtendedProperty", []):
            name, _, value = constraint.partition("=")
            shared = (event.extra.get("extendedProperties") or {}).get("shared") or {}
            if shared.get(name) != value:
                return False
        if "q" in params:
            needle = params["q"].casefold()
            haystack = f"{event.title}\n{event.description}\n{event.location}".casefold()
            if needle not in haystack:
                return False
        if event.is_master and series_in_window is not None:
            return event.id in series_in_window
        return _overlaps(event, params.get("timeMin"), params.get("timeMax"))

    def _list_response(
        self,
        call: Call,
        calendar: Calendar,
        entries: list[Event],
        include: Callable[[Event], bool],
        *,
        order: str,
        snapshot: int,
        since: int | None,
    ) -> Response:
        """One page of an events collection, with page tokens that resume after a sort key."""
        params = call.params
        fingerprint = _fingerprint(call.request, calendar.id)
        after: tuple[Any, ...] | None = None
        if "pageToken" in params:
            state = self._unseal("page", params["pageToken"])
            if not isinstance(state, dict) or state.get("f") != fingerprint:
                raise invalid_parameter("pageToken", "Invalid page token value.")
            snapshot, after = state["s"], tuple(state["k"])
        key = _sort_key(order)
        selected = []
        for event in entries:
            if event.seq > snapshot:
                continue  # changed since the listing began: the next sync token brings it
            if include(event):
                item_key = key(event)
                if after is None or item_key > after:
                    selected.append((item_key, event))
        selected.sort(key=lambda pair: pair[0])
        size = min(params.get("maxResults", 250), MAX_PAGE_SIZE)
        page = selected[:size]
        zone = params.get("timeZone")
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": _etag(f"{calendar.id}:{snapshot}"),
            "summary": calendar.name,
            "description": "",
            "updated": rfc3339_ms(max((e.updated for e in entries), default=utcnow())),
            "timeZone": calendar.time_zone,
            "accessRole": _role(calendar),
            "defaultReminders": [{"method": "popup", "minutes": 10}] if calendar.primary else [],
            "items": [
                self.render(call.account, calendar, event, zone=zone, minimal=True)
                for _, event in page
            ],
        }
        if len(selected) > size:
            body["nextPageToken"] = self._seal(
                "page", {"f": fingerprint, "s": snapshot, "k": list(page[-1][0])}
            )
        elif call.method.id == "events.list":
            body["nextSyncToken"] = self._seal(
                "sync", [f"{call.account.email}/{calendar.id}", snapshot]
            )
        return Response.json(body)

    def _events_instances(self, call: Call) -> Response:
        params = call.params
        calendar = self._calendar(call)
        with self.store.lock:
            master = calendar.events.get(params["eventId"])
            if master is None:
                raise not_found()
            entries = (
                [e for e in calendar.events.values() if e.series_id == master.id]
                if master.is_master
                else [master]
            )
            snapshot = self.store.seq
        original = params.get("originalStart")
        wanted = parse_rfc3339(original) if original else None
        if original and wanted is None:
            raise invalid_parameter("originalStart", f"Invalid value '{original}'.")

        def include(event: Event) -> bool:
            if wanted is not None and (
                event.original_start is None
                or _as_utc(event.original_start, event.time_zone) != wanted
            ):
                return False
            return self._matches(event, calendar, params, since=None, single=True)

        return self._list_response(
            call, calendar, entries, include, order="startTime", snapshot=snapshot, since=None
        )

    # --- Calendar API: reading and writing one event -------------------------------------

    def _events_get(self, call: Call) -> Response:
        calendar = self._calendar(call)
        event = calendar.events.get(call.params["eventId"])
        if event is None:
            raise not_found()
        return Response.json(
            self.render(call.account, calendar, event, zone=call.params.get("timeZone"))
        )

    def _events_insert(self, call: Call) -> Response:
        calendar = self._calendar(call, write=True)
        body = call.body
        with self.store.lock:
            event_id = body.get("id")
            if event_id is not None:
                if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
                    raise GoogleError(400, "invalid", "Invalid resource id value.")
                if event_id in calendar.events:
                    raise GoogleError(409, "duplicate", "The requested identifier already exists.")
            else:
                event_id = new_google_id()
                while event_id in calendar.events:
                    event_id = new_google_id()
            event = self._build(call, calendar, body, event_id=event_id, base=None)
            self._save(call.account, calendar, event, previous=None)
        return Response.json(self.render(call.account, calendar, event))

    def _events_patch(self, call: Call) -> Response:
        return self._replace(call, merge=True)

    def _events_update(self, call: Call) -> Response:
        return self._replace(call, merge=False)

    def _replace(self, call: Call, *, merge: bool) -> Response:
        calendar = self._calendar(call, write=True)
        with self.store.lock:
            base = calendar.events.get(call.params["eventId"])
            if base is None:
                raise not_found()
            resource = _merge(self._resource(base), call.body) if merge else call.body
            event = self._build(call, calendar, resource, event_id=base.id, base=base)
            self._save(call.account, calendar, event, previous=base)
        return Response.json(self.render(call.account, calendar, event))

    def _events_delete(self, call: Call) -> Response:
        calendar = self._calendar(call, write=True)
        with self.store.lock:
            event = calendar.events.get(call.params["eventId"])
            if event is None:
                raise not_found()
            if event.deleted or event.status == "cancelled":
                raise GoogleError(410, "deleted", "Resource has been deleted")
            if event.is_occurrence:
                # A deleted occurrence is a cancelled exception of its series.
                event = dataclasses.replace(event, is_exception=True)
            self.store.delete(call.account, calendar, event)
        return Response(204)

    def _build(
        self,
        call: Call,
        calendar: Calendar,
        resource: dict[str, Any],
        *,
        event_id: str,
        base: Event | None,
    ) -> Event:
        """A new Event from a full resource (insert, update, or a patch merged into the old)."""
        if "start" not in resource or resource["start"] is None:
            raise GoogleError(400, "required", "Missing start time.")
        if "end" not in resource or resource["end"] is None:
            raise GoogleError(400, "required", "Missing end time.")
        start, start_zone = _parse_when(resource["start"], "start")
        end, end_zone = _parse_when(resource["end"], "end")
        if isinstance(start, datetime) != isinstance(end, datetime):
            raise GoogleError(
                400,
                "invalid",
                "Start and end times must either both be date or both be dateTime.",
            )
        if end < start or (not isinstance(start, datetime) and end == start):  # type: ignore[operator]
            raise GoogleError(
                400, "timeRangeEmpty", "The specified time range is empty.", domain="calendar"
            )
        time_zone = (
            start_zone or end_zone or (base.time_zone if base is not None else calendar.time_zone)
        )
        for name in ("summary", "description", "location"):
            if resource.get(name) is not None and not isinstance(resource[name], str):
                raise GoogleError(400, "invalid", f"Invalid value for: {name}")
        status = resource.get("status") or "confirmed"
        if status not in {"confirmed", "tentative", "cancelled"}:
            raise GoogleError(400, "invalid", f"Invalid value for: status ({status})")
        event_type = resource.get("eventType") or (base.event_type if base else "default")
        if base is None and event_type not in {
            "default",
            "outOfOffice",
            "focusTime",
            "workingLocation",
            "birthday",
        }:
            raise GoogleError(400, "invalid", f"Invalid event type: {event_type}")
        recurrence: list[str] = []
        if base is None or not base.is_occurrence:
            recurrence = _parse_recurrence(resource.get("recurrence"))
        extended = resource.get("extendedProperties") or {}
        if not isinstance(extended, dict):
            raise GoogleError(400, "invalid", "Invalid value for: extendedProperties")
        private = _string_map(extended.get("private"), "extendedProperties.private")
        shared = _string_map(extended.get("shared"), "extendedProperties.shared")
        extra = {k: v for k, v in resource.items() if k in EVENT_EXTRA_FIELDS}
        extra.pop("extendedProperties", None)
        if shared:
            extra["extendedProperties"] = {"shared": shared}
        sequence = base.extra.get("sequence", 0) if base is not None else 0
        if base is not None and (
            base.start != start or base.end != end or base.recurrence != recurrence
        ):
            sequence += 1
        if base is None and resource.get("sequence") is not None:
            sequence = resource["sequence"]
            if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
                raise GoogleError(400, "invalid", "Invalid sequence value.")
        extra["sequence"] = sequence
        online_url = base.online_url if base is not None else ""
        if call.params.get("conferenceDataVersion", 0) >= 1:
            online_url = _conference_url(resource.get("conferenceData"))
        deleted = base.deleted if base is not None else False
        if deleted and status != "cancelled":
            deleted = False  # an update that gives a deleted event a live status restores it
        return Event(
            id=event_id,
            calendar_id=calendar.id,
            ical_uid=(
                base.ical_uid
                if base is not None
                else str(resource.get("iCalUID") or f"{event_id}@google.com")
            ),
            title=resource.get("summary") or "",
            start=start,
            end=end,
            time_zone=time_zone,
            description=resource.get("description") or "",
            location=resource.get("location") or "",
            online_url=online_url,
            status=status,
            event_type=event_type,
            recurrence=recurrence,
            series_id=base.series_id if base is not None else "",
            original_start=base.original_start if base is not None else None,
            is_exception=base.is_occurrence if base is not None else False,
            created=base.created if base is not None else utcnow(),
            deleted=deleted,
            private_properties=private,
            extra=extra,
        )

    def _save(
        self, account: Account, calendar: Calendar, event: Event, *, previous: Event | None
    ) -> None:
        self.store.save(account, calendar, event)
        if event.is_master or (previous is not None and previous.is_master):
            self._expand(account, calendar, event)

    def _expand(self, account: Account, calendar: Calendar, master: Event) -> None:
        """Bring a series' occurrences in line with its master; exceptions are kept."""
        existing = {e.id: e for e in calendar.events.values() if e.series_id == master.id}
        fresh = expand_series(master) if master.is_master and not master.deleted else []
        kept = set()
        for occurrence in fresh:
            kept.add(occurrence.id)
            old = existing.get(occurrence.id)
            if old is not None and old.is_exception:
                continue
            occurrence.extra = {k: v for k, v in master.extra.items() if k != "sequence"}
            occurrence.extra["sequence"] = master.extra.get("sequence", 0)
            if old is not None:
                occurrence.created = old.created
                if _same_content(old, occurrence):
                    continue
            self.store.save(account, calendar, occurrence)
        for occurrence_id, old in existing.items():
            if occurrence_id not in kept and not old.deleted:
                self.store.delete(account, calendar, old)

    # --- Calendar API: push notifications -----------------------------------------------------

    def _events_watch(self, call: Call) -> Response:
        calendar = self._calendar(call)
        body = call.body
        channel_id = body.get("id")
        if not isinstance(channel_id, str) or not channel_id:
            raise GoogleError(400, "required", "Required: channel id", location="resource.id")
        if body.get("type") not in {"web_hook", "webhook"}:
            raise GoogleError(
                400, "invalid", f"Unknown channel type: {body.get('type')}", location="type"
            )
        address = body.get("address")
        if not isinstance(address, str) or not address:
            raise GoogleError(400, "required", "Required: address", location="resource.address")
        if not _acceptable_webhook(address):
            raise GoogleError(
                400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {address}"
            )
        now_ms = int(time.time() * 1000)
        ttl = CHANNEL_TTL
        channel_params = body.get("params") or {}
        if isinstance(channel_params, dict) and str(channel_params.get("ttl", "")).isdigit():
            ttl = int(channel_params["ttl"])
        expiration = now_ms + min(ttl, CHANNEL_MAX_TTL) * 1000
        if body.get("expiration") is not None:
            try:
                expiration = int(body["expiration"])
            except (TypeError, ValueError) as error:
                raise GoogleError(400, "invalid", "Invalid value for: expiration") from error
            expiration = min(expiration, now_ms + CHANNEL_MAX_TTL * 1000)
        resource_id = _b64(
            hmac.new(
                self.secret, f"{call.account.email}/{calendar.id}".encode(), hashlib.sha256
            ).digest()[:18]
        )
        resource_uri = (
            f"{call.request.base_url}/calendar/v3/calendars/"
            f"{quote(call.params['calendarId'], safe='')}/events?alt=json"
        )
        token = body.get("token")
        channel = Channel(
            id=channel_id,
            resource_id=resource_id,
            resource_uri=resource_uri,
            email=call.account.email,
            calendar_id=calendar.id,
            address=address,
            token=str(token) if token else None,
            expiration=expiration,
        )
        with self.lock:
            existing = self.channels.get(channel_id)
            if existing is not None and existing.live():
                raise GoogleError(400, "channelIdNotUnique", "Channel id not unique")
            self.channels[channel_id] = channel
        self.notifier.push(channel, "sync")
        answer = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": channel.resource_uri,
            "expiration": str(channel.expiration),
        }
        if channel.token:
            answer["token"] = channel.token
        return Response.json(answer)

    def _channels_stop(self, call: Call) -> Response:
        channel_id = call.body.get("id")
        resource_id = call.body.get("resourceId")
        with self.lock:
            channel = self.channels.get(channel_id) if isinstance(channel_id, str) else None
            if channel is None or channel.resource_id != resource_id or channel.stopped:
                raise GoogleError(
                    404, "notFound", f"Channel '{channel_id}' not found for project 'sandbox'"
                )
            channel.stopped = True
            del self.channels[channel.id]
        return Response(204)

    def _on_change(self, account: Account, calendar: Calendar, event: Event) -> None:
        if not self.channels or account.provider != GOOGLE:
            return
        with self.lock:
            watching = [
                c
                for c in self.channels.values()
                if c.email == account.email and c.calendar_id == calendar.id
            ]
            for channel in watching:
                if not channel.live():
                    self.channels.pop(channel.id, None)
        for channel in watching:
            if channel.live():
                self.notifier.push(channel, "exists")

    # --- batch ----------------------------------------------------------------------------------

    def _batch(self, request: Request) -> Response:
        message = Message()
        message["Content-Type"] = request.headers.get("content-type", "")
        boundary = message.get_param("boundary")
        if message.get_content_type() != "multipart/mixed" or not isinstance(boundary, str):
            raise GoogleError(400, "badRequest", "Batch requests must be multipart/mixed.")
        parts = _split_multipart(request.body, boundary.encode())
        if not parts:
            raise GoogleError(400, "badRequest", "Invalid multipart request with 0 mime parts.")
        if len(parts) > MAX_BATCH_CALLS:
            raise GoogleError(
                400,
                "badRequest",
                f"A batch request cannot contain more than {MAX_BATCH_CALLS} calls.",
            )
        answers = []
        for headers, payload in parts:
            content_id = headers.get("content-id", "")
            inner = _parse_inner_request(payload)
            if inner is None or inner[1].startswith("/batch"):
                response = google_error(GoogleError(400, "badRequest", "Invalid batch part."))
            else:
                verb, target, inner_headers, inner_body = inner
                if "authorization" not in inner_headers and "authorization" in request.headers:
                    inner_headers["authorization"] = request.headers["authorization"]
                response, _ = self.sandbox.handle(
                    Request(
                        verb,
                        target,
                        inner_headers,
                        inner_body,
                        base_url=request.base_url,
                        secure=request.secure,
                    )
                )
            answers.append((content_id, response))
        boundary_out = "batch_" + secrets.token_hex(12)
        chunks = []
        for index, (content_id, response) in enumerate(answers, start=1):
            if content_id.startswith("<") and content_id.endswith(">"):
                answer_id = f"<response-{content_id[1:-1]}>"
            else:
                answer_id = f"<response-{content_id or f'item{index}'}>"
            try:
                phrase = http.HTTPStatus(response.status).phrase
            except ValueError:
                phrase = "Unknown"
            lines = [f"HTTP/1.1 {response.status} {phrase}"]
            lines += [
                f"{name}: {value}"
                for name, value in response.headers.items()
                if name.lower() != "content-length"
            ]
            lines.append(f"Content-Length: {len(response.body)}")
            head = (
                f"--{boundary_out}\r\nContent-Type: application/http\r\n"
                f"Content-ID: {answer_id}\r\n\r\n" + "\r\n".join(lines) + "\r\n\r\n"
            )
            chunks.append(head.encode() + response.body + b"\r\n")
        chunks.append(f"--{boundary_out}--\r\n".encode())
        return Response(
            200,
            b"".join(chunks),
            {"Content-Type": f"multipart/mixed; boundary={boundary_out}"},
        )


def install(sandbox: Sandbox) -> GoogleSandbox:
    provider = GoogleSandbox(sandbox)
    sandbox.routers.extend(provider.routers)
    return provider


# --- helpers --------------------------------------------------------------------------------


def normalize_scopes(requested: list[str]) -> tuple[str, ...]:
    scopes = {SCOPE_ALIASES.get(scope, scope) for scope in requested}
    if scopes & {USERINFO_EMAIL, USERINFO_PROFILE}:
        scopes.add("openid")
    return tuple(sorted(scopes))


def full_sync_required() -> GoogleError:
    return GoogleError(
        410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required."
    )


def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").startswith("application/json"):
        data = request.json()
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return request.form()


def _json_body(method: Method, request: Request) -> dict[str, Any]:
    if method.request is None or not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as error:
        raise GoogleError(400, "parseError", "Parse Error") from error
    if not isinstance(data, dict):
        raise GoogleError(400, "badRequest", "The request body must be a JSON object.")
    return data


def _redirect(uri: str, **params: str | None) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if urlsplit(uri).query else ("" if uri.endswith("?") else "?")
    return Response.redirect(f"{uri}{separator}{query}")


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;"
        "color:#202124}fieldset{border:1px solid #dadce0;border-radius:8px;padding:1rem}"
        ".choice{margin:.5rem 0}.email{color:#5f6368;margin-left:.25rem}"
        "button{font:inherit;padding:.5rem 1.5rem;margin-right:.5rem;border-radius:4px}"
        "#allow{background:#1a73e8;color:#fff;border:0}[role=alert]{color:#b3261e}"
        f"</style></head><body><main>{body}</main></body></html>"
    )


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@functools.lru_cache(maxsize=256)
def _quoted(text: str) -> str:
    return quote(text, safe="")


def _role(calendar: Calendar) -> str:
    if calendar.primary:
        return "owner"
    return "writer" if calendar.can_edit else "reader"


def _etag(text: str) -> str:
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:16] + '"'


def _as_utc(value: datetime | date, zone: str) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(
        UTC
    )


def _when(value: datetime | date, zone: str, display_zone: str | None) -> dict[str, str]:
    if not isinstance(value, datetime):
        return {"date": value.isoformat()}
    shown = _zone(display_zone or zone)
    return {"dateTime": value.astimezone(shown).isoformat(), "timeZone": zone}


def _parse_when(value: Any, name: str) -> tuple[datetime | date, str | None]:
    if not isinstance(value, dict):
        raise GoogleError(400, "invalid", f"Invalid {name} time.")
    zone = value.get("timeZone")
    if zone is not None and (not isinstance(zone, str) or zone_or_none(zone) is None):
        raise GoogleError(400, "invalid", f"Invalid time zone definition for {name} time.")
    if value.get("date") is not None:
        try:
            return date.fromisoformat(str(value["date"])), zone
        except ValueError as error:
            raise GoogleError(400, "invalid", f"Invalid {name} time.") from error
    if value.get("dateTime") is None:
        raise GoogleError(400, "required", f"Missing {name} time.")
    text = str(value["dateTime"])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise GoogleError(400, "invalid", f"Invalid {name} time.") from error
    if "T" not in text.upper():
        raise GoogleError(400, "invalid", f"Invalid {name} time.")
    if parsed.tzinfo is None:
        if zone is None:
            raise GoogleError(400, "invalid", f"Missing time zone definition for {name} time.")
        parsed = parsed.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return parsed, zone


def _parse_recurrence(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
        raise GoogleError(400, "invalid", "Invalid recurrence rule.")
    lines = [line.strip() for line in value if line.strip()]
    if lines:
        prefixes = ("RRULE:", "EXRULE:", "RDATE", "EXDATE")
        if not all(line.upper().startswith(prefixes) for line in lines):
            raise GoogleError(400, "invalid", "Invalid recurrence rule.")
        try:
            rrulestr("\n".join(lines), dtstart=datetime(2026, 1, 1), forceset=True)
        except (ValueError, TypeError) as error:
            raise GoogleError(400, "invalid", "Invalid recurrence rule.") from error
    return lines


def _string_map(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise GoogleError(400, "invalid", f"Invalid value for: {name}")
    return dict(value)


def _conference(url: str) -> dict[str, Any]:
    meet = "meet." in urlsplit(url).netloc
    data: dict[str, Any] = {
        "entryPoints": [{"entryPointType": "video", "uri": url, "label": url.split("://", 1)[-1]}],
        "conferenceSolution": (
            {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"}
            if meet
            else {"key": {"type": "addOn"}, "name": "Video call"}
        ),
        "conferenceId": url.rstrip("/").rsplit("/", 1)[-1],
    }
    return {"hangoutLink": url, "conferenceData": data} if meet else {"conferenceData": data}


def _conference_url(value: Any) -> str:
    """The video link of a conferenceData written with conferenceDataVersion=1."""
    if not isinstance(value, dict):
        return ""
    for entry in value.get("entryPoints") or []:
        if isinstance(entry, dict) and entry.get("entryPointType") == "video" and entry.get("uri"):
            return str(entry["uri"])
    if isinstance(value.get("createRequest"), dict):
        code = secrets.token_hex(5)
        return f"https://meet.sandbox.test/{code[:3]}-{code[3:7]}-{code[7:]}"
    return ""


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Patch semantics: objects merge field by field, arrays and times are replaced."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and key not in {"start", "end", "originalStartTime", "conferenceData"}
        ):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _same_content(a: Event, b: Event) -> bool:
    fields = [
        "title",
        "description",
        "location",
        "start",
        "end",
        "time_zone",
        "online_url",
        "status",
        "event_type",
        "private_properties",
        "extra",
        "deleted",
    ]
    return all(getattr(a, name) == getattr(b, name) for name in fields)


def _overlaps(event: Event, time_min: datetime | None, time_max: datetime | None) -> bool:
    """Whether an event meets the window [time_min, time_max) (either bound may be open)."""
    if time_min is None and time_max is None:
        return True
    start, end = event.start_utc(), event.end_utc()
    if time_min is not None and end <= time_min and not start == end == time_min:
        return False
    return time_max is None or start < time_max


def _sort_key(order: str) -> Callable[[Event], tuple[Any, ...]]:
    if order == "startTime":
        return lambda e: (e.start_utc().timestamp(), e.id)
    if order in {"updated", "changes"}:
        return lambda e: (e.seq, e.id)
    return lambda e: (e.id,)


def _fingerprint(request: Request, calendar_id: str) -> str:
    """What a page token is bound to: the query minus paging and presentation."""
    items = sorted(
        (name, value)
        for name, values in request.query.items()
        if name not in COSMETIC_PARAMETERS
        for value in values
    )
    text = json.dumps([calendar_id, request.path, items])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _acceptable_webhook(address: str) -> bool:
    """Google demands https; the sandbox also lets plain http reach loopback listeners."""
    parts = urlsplit(address)
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _split_multipart(body: bytes, boundary: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body: (lower-cased headers, payload)."""
    delimiter = b"--" + boundary
    sections = body.split(delimiter)
    parts = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            break
        section = section.removeprefix(b"\r\n").removeprefix(b"\n")
        section = section.removesuffix(b"\r\n") if section.endswith(b"\r\n") else section
        section = section.removesuffix(b"\n")
        head, payload = _split_head(section)
        parts.append((_parse_headers(head), payload))
    return parts


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Headers and body, at the first blank line (CRLF or bare LF, as clients differ)."""
    match = re.search(rb"\r?\n\r?\n", data)
    if match is None:
        return data, b""
    return data[: match.start()], data[match.end() :]


def _parse_headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in re.split(rb"\r?\n", head):
        name, colon, value = line.decode("utf-8", "replace").partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def _parse_inner_request(payload: bytes) -> tuple[str, str, dict[str, str], bytes] | None:
    """An application/http part: request line, headers, body."""
    payload = payload.lstrip(b"\r\n")
    line, _, rest = payload.partition(b"\n")
    words = line.decode("utf-8", "replace").strip().split(" ")
    if len(words) < 2 or not words[1]:
        return None
    if rest.startswith((b"\r\n", b"\n")):  # no headers
        head, body = b"", rest.partition(b"\n")[2]
    else:
        head, body = _split_head(rest)
    headers = _parse_headers(head)
    length = headers.get("content-length", "")
    if length.isdigit():
        body = body[: int(length)]
    return words[0].upper(), words[1], headers, body
