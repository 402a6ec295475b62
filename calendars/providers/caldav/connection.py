"""A CalDAV account over HTTP: the opaque access token that stands for its credentials, one kept
client per thread, our timeout on every request, and the servers' answers turned into our two
kinds of error.

The token is the credentials themselves (there is nothing to refresh): it is never logged and
never put in a message. https://www.rfc-editor.org/rfc/rfc4791
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests
from caldav import DAVClient
from caldav.davclient import DAVResponse
from caldav.lib import error as dav_error
from django.conf import settings
from lxml import etree

from calendars.errors import ProviderError, RateLimited, Unauthorized
from calendars.providers.base import retry_after_seconds

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CALSERVER = "http://calendarserver.org/ns/"
APPLE = "http://apple.com/ns/ical/"
REFUSED = "The CalDAV server refused the username or password."
PREEMPTIVE = {"basic": requests.auth.HTTPBasicAuth, "digest": requests.auth.HTTPDigestAuth}
UNREADABLE = "The CalDAV server sent an answer that could not be read."


@dataclass(frozen=True)
class Account:
    """What an access token stands for: where the account is, and how to sign in."""

    url: str  # what the learner typed, or the server's root
    username: str
    password: str
    home: str = ""  # the calendar-home-set, once discovered
    # The authentication scheme the server asked for ("basic", "digest"), once known: sent
    # with the first request, where a client that does not know it sends none, is refused
    # (401) and tries again; Radicale answers such a 401 after a 2 s pause (against guessing).
    auth_type: str = ""

    def __repr__(self) -> str:  # a traceback's locals never show the password
        return f"Account(url={self.url!r}, username={self.username!r})"

    def token(self) -> str:
        return json.dumps(
            {"u": self.url, "n": self.username, "p": self.password, "h": self.home,
             "a": self.auth_type},
            separators=(",", ":"),
        )  # fmt: skip

    @classmethod
    def of(cls, token: str) -> Account:
        try:
            data = json.loads(token)
            return cls(data["u"], data["n"], data["p"], data.get("h") or "", data.get("a") or "")
        except (ValueError, KeyError, TypeError):
            raise Unauthorized("The CalDAV access token could not be read.") from None


class Session:
    """One account's client and the count of requests it sent."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.client = DAVClient(
            url=account.home or account.url,
            username=account.username,
            password=account.password,
            timeout=settings.CALENDAR_HTTP_TIMEOUT,
            # caldav 2.0's own `auth_type` builds no authentication (its `build_auth_object`
            # skips it once a type is given): the scheme known is handed over ready-made.
            auth=PREEMPTIVE[account.auth_type](account.username, account.password)
            if account.auth_type in PREEMPTIVE
            else None,
        )
        # The library raises on a 401 or 403 without saying which, nor the body (a refused
        # sync token is a 403 with a precondition): the last answer is kept to tell.
        self.last: requests.Response | None = None
        self.client.session.hooks["response"].append(self._keep)
        self.sent = 0

    def _keep(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.last = response

    @property
    def auth_type(self) -> str:
        """The scheme the server asked for, once a request was answered ("" before)."""
        auth = self.client.auth
        if isinstance(auth, requests.auth.HTTPDigestAuth):
            return "digest"
        return "basic" if isinstance(auth, requests.auth.HTTPBasicAuth) else ""

    def request(
        self,
        method: str,
        url: str,
        body: str = "",
        headers: dict[str, str] | None = None,
        *,
        allow: tuple[int, ...] = (),
    ) -> DAVResponse:
        """One request; statuses in `allow` come back as answers, every other failure as a
        ProviderError (401: Unauthorized; 429 and 5xx: temporary, with Retry-After)."""
        self.sent += 1
        self.last = None
        try:
            response = self.client.request(url, method, body, headers or {})
        except dav_error.AuthorizationError:
            status = self.last.status_code if self.last is not None else 401
            if status in allow:
                body_seen = self.last.content if self.last is not None else b""
                return _Refusal(status, body_seen)  # type: ignore[return-value]
            if status == 401:
                raise Unauthorized(REFUSED, status=401) from None
            raise ProviderError(
                f"The CalDAV server refused the {method} ({status}).",
                permanent=True,
                status=status,
            ) from None
        except (requests.exceptions.RequestException, OSError) as failure:
            # Timeouts, refused connections, a connection dropped in the middle of an answer.
            raise ProviderError(
                f"The CalDAV server could not be reached ({type(failure).__name__})."
            ) from None
        except (etree.XMLSyntaxError, dav_error.DAVError, ValueError):
            raise ProviderError(
                "The CalDAV server sent an answer that could not be read."
            ) from None
        status = response.status
        if status < 400 or status in allow:
            return response
        retry_after = retry_after_seconds(_header(response, "Retry-After"))
        # A 503 that says when to come back is how iCloud throttles.
        if status == 429 or (status == 503 and retry_after is not None):
            raise RateLimited(
                f"The CalDAV server asks to slow down ({status}).",
                retry_after=retry_after,
                status=status,
            )
        if status >= 500:
            raise ProviderError(
                f"The CalDAV server answered {status}.", retry_after=retry_after, status=status
            )
        raise ProviderError(
            f"The CalDAV server answered {status} to a {method}.", permanent=True, status=status
        )

    def propfind(
        self, url: str, *props: tuple[str, str], depth: int = 0, allow: tuple[int, ...] = ()
    ) -> DAVResponse:
        """A PROPFIND asking for `props` (namespace, name) of `url`, or of its members too
        with `depth` 1 (RFC 4918 section 9.1)."""
        body = f'<?xml version="1.0" encoding="utf-8"?><D:propfind {NAMESPACES}>'
        body += xml_props(*props) + "</D:propfind>"
        headers = {"Depth": str(depth), "Content-Type": "application/xml; charset=utf-8"}
        return self.request("PROPFIND", url, body, headers, allow=allow)

    def absolute(self, href: str, base: str | None = None) -> str:
        """An href the server gave (often a bare path; iCloud's point to another host)."""
        return urljoin(base or str(self.client.url), href)


class _Refusal:
    """A 401 or 403 the caller asked to see (the library raises them): its status and body."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.headers: dict[str, str] = {}
        raw = body.encode() if isinstance(body, str) else (body or b"")
        self._raw = raw

    @property
    def raw(self) -> str:
        return self._raw.decode(errors="replace")


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None) or {}
    return headers.get(name)


_local = threading.local()


def session(token: str) -> Session:
    """The account's client, kept per thread (its connections and its negotiated
    authentication serve the next calls); a new token (another account, a new password) gets
    a new one. Counting starts again at each call."""
    key = hashlib.sha256(token.encode()).hexdigest()
    kept = getattr(_local, "kept", None)
    if kept is None or kept[0] != key:
        kept = _local.kept = (key, Session(Account.of(token)))
    kept[1].sent = 0
    return kept[1]


def forget_sessions() -> None:
    """Drops this thread's kept client (tests, after a server went away)."""
    _local.kept = None


def resource_name(href: str) -> str:
    """The last segment of a resource's href, as the client chose it: the event's id."""
    return unquote(urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1])


def xml_props(*names: tuple[str, str]) -> str:
    """A <prop> element naming the properties `names` (namespace, local name)."""
    prefixes = {DAV: "D", CALDAV: "C", CALSERVER: "CS", APPLE: "A"}
    return "<D:prop>" + "".join(f"<{prefixes[ns]}:{name}/>" for ns, name in names) + "</D:prop>"


NAMESPACES = f'xmlns:D="{DAV}" xmlns:C="{CALDAV}" xmlns:CS="{CALSERVER}" xmlns:A="{APPLE}"'


@dataclass
class Entry:
    """One <response> of a multistatus: its href, its status when it has one of its own (a
    deleted member in a sync report), and its properties found (200), by tag."""

    href: str
    status: int
    props: dict[str, Any]


def multistatus(response: Any) -> tuple[list[Entry], str]:
    """The responses of a 207 answer, and the sync-token it carries (RFC 6578), if any.
    RFC 4918 section 14.16: https://www.rfc-editor.org/rfc/rfc4918#section-14.16"""
    tree = getattr(response, "tree", None)
    if tree is None:
        return [], ""
    if tree.tag != f"{{{DAV}}}multistatus":
        raise ProviderError(UNREADABLE)
    entries = []
    for item in tree.findall(f"{{{DAV}}}response"):
        href = item.findtext(f"{{{DAV}}}href") or ""
        own = _status_code(item.findtext(f"{{{DAV}}}status"))
        props: dict[str, Any] = {}
        for propstat in item.findall(f"{{{DAV}}}propstat"):
            if _status_code(propstat.findtext(f"{{{DAV}}}status")) // 100 != 2:
                continue
            for prop in propstat.findall(f"{{{DAV}}}prop"):
                props.update({child.tag: child for child in prop})
        entries.append(Entry(href=href.strip(), status=own or 200, props=props))
    return entries, (tree.findtext(f"{{{DAV}}}sync-token") or "").strip()


def _status_code(line: str | None) -> int:
    """200 from "HTTP/1.1 200 OK"; 0 when there is none."""
    parts = (line or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def prop_text(props: dict[str, Any], namespace: str, name: str) -> str:
    element = props.get(f"{{{namespace}}}{name}")
    return (element.text or "").strip() if element is not None else ""


def prop_href(props: dict[str, Any], namespace: str, name: str) -> str:
    element = props.get(f"{{{namespace}}}{name}")
    found = element.findtext(f"{{{DAV}}}href") if element is not None else None
    return (found or "").strip()
