"""Driving the sandbox's Microsoft side through the real libraries: msal, requests."""

from __future__ import annotations

import contextlib
import html
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import msal
import requests

from sandbox.constants import OUTLOOK_CLIENT_ID, OUTLOOK_CLIENT_SECRET
from sandbox.core import Sandbox

SCOPES = ["Calendars.ReadWrite", "User.Read"]
REDIRECT_URI = "http://localhost:8000/calendars/outlook/callback"
WORK = "camille.durand@contoso.test"
WORK_2 = "alex.martin@contoso.test"
PERSONAL = "sam.nguyen@outlook.test"
FORMATION_PROPERTY = "String {66f5a359-4659-4638-81e0-9b8e2e3a2b5a} Name formationId"


def http_session(sandbox: Sandbox) -> requests.Session:
    """What the app gives msal: trusts the sandbox's CA, ignores REQUESTS_CA_BUNDLE & proxies."""
    session = requests.Session()
    session.verify = str(sandbox.ca_path)
    session.trust_env = False
    return session


def msal_app(
    sandbox: Sandbox, tenant: str = "common", cache: msal.SerializableTokenCache | None = None
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        OUTLOOK_CLIENT_ID,
        client_credential=OUTLOOK_CLIENT_SECRET,
        authority=f"{sandbox.https_url}/{tenant}",
        instance_discovery=False,
        http_client=http_session(sandbox),
        token_cache=cache if cache is not None else msal.SerializableTokenCache(),
    )


@dataclass
class ConsentPage:
    status: int
    text: str
    url: str

    @property
    def accounts(self) -> list[str]:
        return [
            html.unescape(v) for v in re.findall(r'name="account"[^>]*value="([^"]+)"', self.text)
        ]

    def field(self, name: str) -> str:
        match = re.search(rf'name="{name}" value="([^"]*)"', self.text)
        assert match, f"no {name} field on the page"
        return html.unescape(match[1])

    @property
    def action(self) -> str:
        match = re.search(
            r'<form method="post" action="([^"]+)" id="(?:consent|approval)"', self.text
        )
        assert match, "no consent form on the page"
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{html.unescape(match[1])}"


def open_consent(auth_uri: str) -> ConsentPage:
    """What a browser gets: the page is on the plain HTTP listener, no certificate involved."""
    assert auth_uri.startswith("http://"), auth_uri
    response = requests.get(auth_uri, timeout=5, allow_redirects=False)
    return ConsentPage(response.status_code, response.text, auth_uri)


def submit_consent(
    page: ConsentPage, email: str | None, action: str = "accept"
) -> requests.Response:
    """Post the form as a browser would (radio button + the clicked submit button)."""
    data = {"request": page.field("request"), "action": action}
    if email is not None:
        data["account"] = email
    return requests.post(page.action, data=data, timeout=5, allow_redirects=False)


def callback_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, (response.status_code, response.text[:500])
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


def sign_in(
    sandbox: Sandbox,
    email: str,
    *,
    tenant: str = "common",
    scopes: list[str] | None = None,
    app: msal.ConfidentialClientApplication | None = None,
) -> tuple[msal.ConfidentialClientApplication, dict[str, Any]]:
    """The whole authorization code flow through msal; returns the app and msal's result."""
    app = app or msal_app(sandbox, tenant)
    flow = app.initiate_auth_code_flow(scopes or SCOPES, redirect_uri=REDIRECT_URI)
    page = open_consent(flow["auth_uri"])
    assert page.status == 200, page.text
    params = callback_params(submit_consent(page, email))
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result, result
    return app, result


def outlook_token(sandbox: Sandbox, email: str, *, scopes: list[str] | None = None) -> str:
    return sign_in(sandbox, email, scopes=scopes)[1]["access_token"]


def raw_token_request(sandbox: Sandbox, data: dict[str, str], tenant: str = "common") -> Any:
    """The token endpoint without msal, as a client library would call it."""
    form = {"client_id": OUTLOOK_CLIENT_ID, "client_secret": OUTLOOK_CLIENT_SECRET, **data}
    return http_session(sandbox).post(
        f"{sandbox.https_url}/{tenant}/oauth2/v2.0/token", data=form, timeout=5
    )


class Graph:
    """requests against the sandbox's Graph, with a bearer token and the sandbox's CA."""

    def __init__(self, sandbox: Sandbox, token: str) -> None:
        self.sandbox = sandbox
        self.base = f"{sandbox.https_url}/v1.0"
        self.session = http_session(sandbox)
        self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else self.base + path

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.get(self.url(path), **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.post(self.url(path), **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.patch(self.url(path), **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.delete(self.url(path), **kwargs)

    def follow(
        self, path: str, *, headers: dict[str, str] | None = None, params: Any = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
        """Every item of a paged listing; the last page; the number of pages."""
        items: list[dict[str, Any]] = []
        response = self.get(path, headers=headers, params=params)
        pages = 1
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            items += body["value"]
            if "@odata.nextLink" not in body:
                return items, body, pages
            response = self.get(body["@odata.nextLink"], headers=headers)
            pages += 1

    def create_event(
        self, path: str = "/me/events", body: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        response = self.post(path, json=body if body is not None else event_body(**fields))
        assert response.status_code == 201, response.text
        return response.json()


def error_code(response: requests.Response) -> str:
    """Graph's error code, after checking the error has Graph's innerError fields."""
    body = response.json()
    assert set(body["error"]["innerError"]) >= {"date", "request-id", "client-request-id"}
    return body["error"]["code"]


def event_body(
    subject: str = "Formation sécurité",
    *,
    start: datetime | None = None,
    hours: float = 2,
    time_zone: str = "Europe/Paris",
    **extra: Any,
) -> dict[str, Any]:
    start = start or (datetime.now(UTC) + timedelta(days=3)).replace(
        hour=9, minute=0, second=0, microsecond=0, tzinfo=None
    )
    end = start + timedelta(hours=hours)
    return {
        "subject": subject,
        "body": {"contentType": "html", "content": "<p>Salle 2 &amp; café</p>"},
        "start": {"dateTime": start.isoformat(), "timeZone": time_zone},
        "end": {"dateTime": end.isoformat(), "timeZone": time_zone},
        "location": {"displayName": "Salle Voltaire"},
        **extra,
    }


def wide_window() -> dict[str, str]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "startDateTime": (today - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endDateTime": (today + timedelta(days=600)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A change-notification endpoint on a free loopback port (http.server in a thread)."""

    echo: bool = True
    delay: float = 0.0  # seconds before answering a notification (not the handshake)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # answer at once, without a delayed ACK

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                item = Received(
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with receiver._condition:
                    receiver.received.append(item)
                    receiver._condition.notify_all()
                token = item.query.get("validationToken", [None])[0]
                if token is not None:
                    answer = token.encode() if receiver.echo else b"nope"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                else:
                    time.sleep(receiver.delay)
                    answer = b""
                    self.send_response(202)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the sandbox may have given up waiting
                    self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/notifications"

    def wait_for(
        self, predicate: Callable[[Received], bool], timeout: float = 5.0
    ) -> Received | None:
        with self._condition:
            found = self._condition.wait_for(
                lambda: next((r for r in self.received if predicate(r)), None), timeout
            )
            return found or None

    def notifications(self) -> list[dict[str, Any]]:
        with self._condition:
            return [
                n
                for r in self.received
                if "validationToken" not in r.query
                for n in r.json()["value"]
            ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
