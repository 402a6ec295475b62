"""The sandbox's HTTP machinery: requests and responses, routing, the listeners' handler.

Provider modules register routes on a `Router`; each route has an endpoint name
(`google.events.list`, `graph.delta`, ...) used by the counters and by fault rules
(sandbox/faults.py). `Sandbox.handle` (sandbox/core.py) picks the route and answers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from sandbox.store import Account

if TYPE_CHECKING:
    from sandbox.core import Sandbox

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
    # What a JSON body was made from, for a handler that keeps only part of it (a partial
    # response) without reading it back.
    data: Any = None

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(
            status,
            body,
            {"Content-Type": "application/json; charset=UTF-8", **(headers or {})},
            data,
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


def make_server(
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
