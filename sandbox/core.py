"""The sandbox's HTTP machinery: requests, routing, faults, counters, the two listeners.

One `Sandbox` serves every route on two ports: plain HTTP (the pages a browser opens: consent
screens, the inspection page; Google's endpoints) and HTTPS with a certificate authority of its
own (the Microsoft identity platform and Graph, since msal accepts only https authorities).
Provider modules register routes on a `Router`; each route has an endpoint name
(`google.events.list`, `graph.delta`, ...) used by the counters and by fault rules.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.constants import (
    GOOGLE_CLIENT_ID,
    GOOGLE_CLIENT_SECRET,
    OUTLOOK_CLIENT_ID,
    OUTLOOK_CLIENT_SECRET,
)
from sandbox.store import GOOGLE, Account, Store, generate

__all__ = [
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "OUTLOOK_CLIENT_ID",
    "OUTLOOK_CLIENT_SECRET",
    "HTTPError",
    "Options",
    "Request",
    "Response",
    "Router",
    "Sandbox",
]

logger = logging.getLogger("sandbox")


class Request:
    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        *,
        base_url: str,
        secure: bool,
    ) -> None:
        parts = urlsplit(target)
        self.method = method.upper()
        self.path = parts.path
        self.raw_query = parts.query
        self.query: dict[str, list[str]] = parse_qs(parts.query, keep_blank_values=True)
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.base_url = base_url  # scheme://host:port of the listener that got the request
        self.secure = secure
        self.params: dict[str, str] = {}  # filled from the route's pattern
        self.account: Account | None = None  # set by a provider's authentication

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        text = self.body.decode("utf-8", errors="replace")  # a bad byte is not a server error
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(
            status, body, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
        )

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), {"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls(status, b"", {"Location": location})


class HTTPError(Exception):
    """Raised by handlers; rendered by the route's error formatter (Google, Graph, OAuth)."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers or {}


ErrorFormatter = Callable[[HTTPError], Response]
Handler = Callable[[Request], Response]


def plain_error(error: HTTPError) -> Response:
    response = Response.json({"error": error.reason, "message": error.message}, error.status)
    response.headers.update(error.headers)
    return response


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    endpoint: str
    handler: Handler
    errors: ErrorFormatter
    # The account a fault rule is matched against, before the handler runs.
    identify: Callable[[Request], Account | None] | None = None


class Router:
    def __init__(self, *, errors: ErrorFormatter = plain_error) -> None:
        self.routes: list[Route] = []
        self.errors = errors

    def route(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        identify: Callable[[Request], Account | None] | None = None,
    ) -> Callable[[Handler], Handler]:
        """`path` is a regular expression with named groups, anchored at both ends."""

        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method.upper(),
                    re.compile(f"^{path}$"),
                    endpoint,
                    handler,
                    self.errors,
                    identify,
                )
            )
            return handler

        return register


# --- faults -----------------------------------------------------------------------------

FAULT_KINDS = {
    "rate_limit": "429 Too Many Requests with Retry-After",
    "rate_limit_403": "403 rateLimitExceeded (Google's other rate-limit answer)",
    "quota_exceeded": "403 quotaExceeded (Google: daily limit, not fixed by retrying soon)",
    "server_error": "500 Internal Server Error",
    "unavailable": "503 Service Unavailable with Retry-After",
    "slow": "answers after `delay` seconds (longer than a client's timeout)",
    "truncated": "the right status, but the body cut in half",
    "malformed": "the right status, but a body that is not JSON",
    "unauthorized": "401: the access token is refused as expired",
    "lost_response": "the request is carried out, then the connection drops without an answer",
}


@dataclass
class Fault:
    kind: str
    endpoint: str = "*"  # fnmatch pattern on endpoint names, e.g. "google.events.*"
    account: str = "*"  # fnmatch pattern on the account's e-mail
    times: int = 1  # how many matching requests it hits; 0 = until cleared
    retry_after: int | None = 1
    delay: float = 5.0
    hits: int = 0

    def matches(self, endpoint: str, account: Account | None) -> bool:
        if not fnmatch.fnmatchcase(endpoint, self.endpoint):
            return False
        if self.account != "*" and (
            account is None or not fnmatch.fnmatch(account.email, self.account)
        ):
            return False
        return self.times == 0 or self.hits < self.times

    def as_dict(self) -> dict[str, Any]:
        fields = ("kind", "endpoint", "account", "times", "retry_after", "delay", "hits")
        return {name: getattr(self, name) for name in fields}


# --- the sandbox ------------------------------------------------------------------------


@dataclass
class Options:
    seed: int = 1
    events: int = 200  # live entries (occurrences counted) in each primary calendar
    access_token_lifetime: int = 3600  # seconds
    code_lifetime: int = 600  # authorization codes, seconds
    refresh_token_lifetime: int = 90 * 24 * 3600  # Microsoft's; Google's do not expire
    notification_timeout: float = 10.0  # push notifications and Graph's validation handshake
    state_dir: Path | None = None  # where the certificate authority is kept
    google_clients: dict[str, str] = field(
        default_factory=lambda: {GOOGLE_CLIENT_ID: GOOGLE_CLIENT_SECRET}
    )
    outlook_clients: dict[str, str] = field(
        default_factory=lambda: {OUTLOOK_CLIENT_ID: OUTLOOK_CLIENT_SECRET}
    )


class Sandbox:
    """State plus servers. Provider modules attach themselves in `install`."""

    def __init__(self, options: Options | None = None, *, generate_data: bool = True) -> None:
        from sandbox import google, microsoft, pages

        self.options = options or Options()
        self.store = Store()
        self.counters: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self.routers: list[Router] = []
        self.http_url = ""
        self.https_url = ""
        self.ca_path: Path | None = None
        self._servers: list[ThreadingHTTPServer] = []
        if generate_data:
            generate(self.store, seed=self.options.seed, events=self.options.events)
        self.control = Router()
        _install_control(self)
        self.routers.append(self.control)
        self.google = google.install(self)
        self.microsoft = microsoft.install(self)
        self.routers.append(pages.install(self))

    def provider_for(self, account: Account) -> Any:
        return self.google if account.provider == GOOGLE else self.microsoft

    # --- faults and counters ------------------------------------------------------------

    def add_fault(self, kind: str, **rule: Any) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        fault = Fault(kind=kind, **rule)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._faults_lock:
            self.faults.clear()

    def _take_fault(self, endpoint: str, account: Account | None) -> Fault | None:
        with self._faults_lock:
            for fault in self.faults:
                if fault.matches(endpoint, account):
                    fault.hits += 1
                    return fault
        return None

    def count(self, endpoint: str) -> int:
        return self.counters[endpoint]

    def reset_counters(self) -> None:
        self.counters.clear()

    # --- dispatch -----------------------------------------------------------------------

    def resolve(self, request: Request) -> tuple[Route | None, bool]:
        """The route for a request, and whether the path exists with another method."""
        path_known = False
        for router in self.routers:
            for route in router.routes:
                match = route.pattern.match(request.path)
                if match is None:
                    continue
                if route.method != request.method:
                    path_known = True
                    continue
                request.params = {k: v for k, v in match.groupdict().items() if v is not None}
                return route, path_known
        return None, path_known

    def handle(self, request: Request) -> tuple[Response, Fault | None]:
        route, path_known = self.resolve(request)
        if route is None:
            status, reason = (405, "methodNotAllowed") if path_known else (404, "notFound")
            return plain_error(HTTPError(status, reason, f"{request.method} {request.path}")), None
        self.counters[route.endpoint] += 1
        try:
            account = route.identify(request) if route.identify else None
        except HTTPError:
            account = None
        fault = self._take_fault(route.endpoint, account) if self.faults else None
        if fault is not None and fault.kind not in {
            "truncated",
            "malformed",
            "lost_response",
            "slow",
        }:
            return route.errors(_fault_error(fault)), fault
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        try:
            response = route.handler(request)
        except HTTPError as error:
            response = route.errors(error)
        except Exception:
            logger.exception("sandbox handler failed for %s %s", request.method, request.path)
            response = route.errors(HTTPError(500, "backendError", "Backend Error"))
        if fault is not None and fault.kind == "truncated":
            response.body = response.body[: max(1, len(response.body) // 2)]
        elif fault is not None and fault.kind == "malformed":
            response.body = b"<html><body>Bad Gateway</body></html>"
        return response, fault

    def call(
        self, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        """Dispatch without the network: for tests of the sandbox itself."""
        request = Request(method, path, headers or {}, body, base_url=self.http_url, secure=False)
        return self.handle(request)[0]

    # --- servers ------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0, tls_port: int = 0) -> Sandbox:
        from sandbox.tls import ensure_certificates

        state_dir = self.options.state_dir or Path.cwd() / "var" / "sandbox"
        certificates = ensure_certificates(state_dir, hosts=[host, "localhost", "127.0.0.1", "::1"])
        self.ca_path = certificates.ca
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificates.cert, certificates.key)

        plain = _server(self, host, port, secure=False)
        secure = _server(self, host, tls_port, secure=True, context=context)
        name = f"[{host}]" if ":" in host else host
        self.http_url = f"http://{name}:{plain.server_address[1]}"
        self.https_url = f"https://{name}:{secure.server_address[1]}"
        plain.base_url, secure.base_url = self.http_url, self.https_url  # type: ignore[attr-defined]
        for server in (plain, secure):
            self._servers.append(server)
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        for provider in (self.google, self.microsoft):
            stop = getattr(provider, "stop", None)
            if stop:
                stop()


def _fault_error(fault: Fault) -> HTTPError:
    retry = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    return {
        "rate_limit": HTTPError(429, "rateLimitExceeded", "Rate Limit Exceeded", headers=retry),
        "rate_limit_403": HTTPError(403, "rateLimitExceeded", "Rate Limit Exceeded", headers=retry),
        "quota_exceeded": HTTPError(403, "quotaExceeded", "Calendar usage limits exceeded."),
        "server_error": HTTPError(500, "backendError", "Backend Error"),
        "unavailable": HTTPError(503, "backendError", "Service Unavailable", headers=retry),
        "unauthorized": HTTPError(401, "authError", "Invalid Credentials"),
    }[fault.kind]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm and the client's
    # delayed ACK every keep-alive request would wait ~40 ms.
    disable_nagle_algorithm = True
    server: Any

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            self.command,
            self.path,
            dict(self.headers.items()),
            body,
            base_url=self.server.base_url,
            secure=self.server.secure,
        )
        response, fault = self.server.sandbox.handle(request)
        if fault is not None and fault.kind == "lost_response":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.server.base_url, *args)


def _server(
    sandbox: Sandbox, host: str, port: int, *, secure: bool, context: ssl.SSLContext | None = None
) -> ThreadingHTTPServer:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    attributes = {"address_family": family, "daemon_threads": True}
    server_class = type("SandboxServer", (ThreadingHTTPServer,), attributes)
    server = server_class((host, port), _Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.sandbox = sandbox  # type: ignore[attr-defined]
    server.secure = secure  # type: ignore[attr-defined]
    return server


# --- control API (tests, benchmarks, the inspection page) --------------------------------


def _install_control(sandbox: Sandbox) -> None:
    router = sandbox.control

    def account_or_404(request: Request) -> Account:
        account = sandbox.store.account(request.params["email"])
        if account is None:
            raise HTTPError(404, "notFound", "no such sandbox account")
        return account

    @router.route("GET", r"/_sandbox/api/counters", "sandbox.counters")
    def counters(request: Request) -> Response:
        return Response.json(dict(sandbox.counters))

    @router.route("POST", r"/_sandbox/api/counters/reset", "sandbox.counters.reset")
    def counters_reset(request: Request) -> Response:
        sandbox.reset_counters()
        return Response(204)

    @router.route("GET", r"/_sandbox/api/faults", "sandbox.faults")
    def faults(request: Request) -> Response:
        return Response.json([f.as_dict() for f in sandbox.faults])

    @router.route("POST", r"/_sandbox/api/faults", "sandbox.faults.add")
    def faults_add(request: Request) -> Response:
        rule = request.json() or {}
        if not isinstance(rule, dict) or "kind" not in rule:
            raise HTTPError(400, "badRequest", "a JSON object with at least 'kind'")
        allowed = {"kind", "endpoint", "account", "times", "retry_after", "delay"}
        try:
            fault = sandbox.add_fault(**{k: v for k, v in rule.items() if k in allowed})
        except (TypeError, ValueError) as error:
            raise HTTPError(400, "badRequest", str(error)) from error
        return Response.json(fault.as_dict(), 201)

    @router.route("DELETE", r"/_sandbox/api/faults", "sandbox.faults.clear")
    def faults_clear(request: Request) -> Response:
        sandbox.clear_faults()
        return Response(204)

    @router.route("POST", r"/_sandbox/api/accounts/(?P<email>[^/]+)/revoke", "sandbox.revoke")
    def revoke(request: Request) -> Response:
        account = account_or_404(request)
        sandbox.provider_for(account).revoke_account(account)
        return Response(204)

    @router.route(
        "POST", r"/_sandbox/api/accounts/(?P<email>[^/]+)/expire-tokens", "sandbox.expire"
    )
    def expire(request: Request) -> Response:
        account = account_or_404(request)
        sandbox.provider_for(account).expire_access_tokens(account)
        return Response(204)

    @router.route(
        "POST", r"/_sandbox/api/accounts/(?P<email>[^/]+)/invalidate-sync", "sandbox.invalidate"
    )
    def invalidate(request: Request) -> Response:
        sandbox.store.invalidate_sync_state(account_or_404(request))
        return Response(204)

    @router.route("GET", r"/_sandbox/api/accounts", "sandbox.accounts")
    def accounts(request: Request) -> Response:
        return Response.json(
            [
                {
                    "provider": a.provider,
                    "email": a.email,
                    "name": a.name,
                    "calendars": [
                        {
                            "id": c.id,
                            "name": c.name,
                            "primary": c.primary,
                            "canEdit": c.can_edit,
                            "events": sum(not e.deleted for e in c.events.values()),
                        }
                        for c in a.calendars.values()
                    ],
                }
                for a in sandbox.store.accounts.values()
            ]
        )
