"""The sandbox: its state (store, counters, fault rules), dispatch, and its two listeners.

One `Sandbox` serves every route on two ports: plain HTTP (the pages a browser opens: consent
screens, the inspection page; Google's endpoints) and HTTPS with a certificate authority of its
own (the Microsoft identity platform and Graph, since msal accepts only https authorities).
The control API, the providers (Google, then Microsoft) and the pages register their routes,
in that order; the first route that matches the request's path and method answers it.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sandbox.constants import (
    GOOGLE_CLIENT_ID,
    GOOGLE_CLIENT_SECRET,
    OUTLOOK_CLIENT_ID,
    OUTLOOK_CLIENT_SECRET,
)
from sandbox.control import Control
from sandbox.faults import FAULT_KINDS, Fault, fault_error
from sandbox.server import HTTPError, Request, Response, Route, Router, make_server, plain_error
from sandbox.store import GOOGLE, Account, Store, generate

logger = logging.getLogger("sandbox")


@dataclass
class Options:
    seed: int = 1
    events: int = 200  # live entries (occurrences counted) in each primary calendar
    access_token_lifetime: int = 3600  # seconds
    code_lifetime: int = 600  # authorization codes, seconds
    refresh_token_lifetime: int = 90 * 24 * 3600  # Microsoft's; Google's do not expire
    # Entra replaces a refresh token on every use but leaves the old one valid (until it
    # expires); strict: the old one stops working at once (a test of always storing the newest).
    strict_refresh_rotation: bool = False
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
        self.control = Control(self)
        self.routers.append(self.control.router)
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
                    if fault.passed < fault.after:
                        fault.passed += 1
                        continue
                    fault.hits += 1
                    return fault
        return None

    def count(self, endpoint: str) -> int:
        return self.counters[endpoint]

    def reset_counters(self) -> None:
        self.counters.clear()

    def settle(self, timeout: float = 5.0) -> bool:
        """Waits until no Graph request is running (one a client gave up on keeps its mailbox's
        slot until it ends, as at Microsoft); True if it got there within `timeout`."""
        deadline = time.monotonic() + timeout
        while self.microsoft.throttle.busy():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

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
            "empty",
        }:
            return route.errors(fault_error(fault)), fault
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
        elif fault is not None and fault.kind == "empty":
            response.body = _emptied(response.body)
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

        plain = make_server(self, host, port, secure=False)
        secure = make_server(self, host, tls_port, secure=True, context=context)
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


def _emptied(body: bytes) -> bytes:
    """A listing's page with its entries taken out (`items` for Google, `value` for Graph),
    everything else kept: a provider that suddenly lists nothing."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict):
        for key in ("items", "value"):
            if isinstance(data.get(key), list):
                data[key] = []
    return json.dumps(data).encode()
