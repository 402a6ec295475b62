"""Real CalDAV servers on loopback for the CalDAV provider's tests: Radicale with htpasswd
authentication, and Xandikos (which has no authentication over plain HTTP) behind a small
reverse proxy that asks for Basic credentials. Every request goes through that proxy, which
can also answer in the servers' place: a 503, a connection dropped in the middle of an answer,
sync tokens refused, a read-only calendar."""

from __future__ import annotations

import base64
import http.client
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

USERNAME = "camille@example.com"
PASSWORD = "abcd-efgh-ijkl-mnop"  # an app-specific password's shape
# Not forwarded; nor Accept-Encoding: the proxy reads the answers, so they come uncompressed.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}
NOT_FORWARDED = {*HOP_BY_HOP, "accept-encoding", "content-length"}  # set again from the body
SYNC_TOKEN = re.compile(rb"<(?:\w+:)?sync-token>([^<]+)</(?:\w+:)?sync-token>")


@dataclass
class Fault:
    status: int = 503
    retry_after: str | None = None
    method: str = ""  # only requests of this method; "" for any
    drop: bool = False  # send half the answer, then close the connection


@dataclass
class ProxyState:
    upstream: tuple[str, int]
    credentials: tuple[str, str] | None  # asked by the proxy (Xandikos), else by the server
    read_only: set[str] = field(default_factory=set)  # collection paths the account cannot write
    faults: list[Fault] = field(default_factory=list)
    seen_tokens: set[bytes] = field(default_factory=set)
    refused_tokens: set[bytes] = field(default_factory=set)
    hide_sync_token: bool = False  # a server without sync-collection (RFC 6578)
    requests: list[tuple[str, str]] = field(default_factory=list)
    # Paths the proxy answers itself (204) by calling the action: test controls.
    controls: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if not fault.method or fault.method == method:
                    self.faults.remove(fault)
                    return fault
        return None


def _handler(state: ProxyState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with state.lock:
                state.requests.append((self.command, self.path))
            if self.path in state.controls:
                state.controls[self.path]()
                self._answer(204, b"")
                return
            if state.credentials is not None and not self._authenticated():
                self._answer(401, b"", {"WWW-Authenticate": 'Basic realm="xandikos"'})
                return
            fault = state.take_fault(self.command)
            if fault is not None and not fault.drop:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                self._answer(fault.status, b"Service Unavailable", extra)
                return
            path = self.path.split("?")[0]
            if self.command in ("PUT", "DELETE", "PROPPATCH", "MOVE") and any(
                path.startswith(p) for p in state.read_only
            ):
                self._answer(403, b"Read-only calendar")
                return
            with state.lock:
                for token in state.refused_tokens:
                    body = body.replace(token, b"refused-" + token[-8:])
            status, headers, answer = self._forward(body)
            with state.lock:
                state.seen_tokens.update(SYNC_TOKEN.findall(answer))
            if self.command == "PROPFIND" and state.hide_sync_token:
                answer = re.sub(rb"<(\w+:)?sync-token>[^<]*</(\w+:)?sync-token>", b"", answer)
            if self.command == "PROPFIND" and state.read_only:
                answer = _privileges_read_only(answer, state.read_only)
            if fault is not None and fault.drop:
                self._drop(status, headers, answer)
                return
            self._answer(status, answer, headers)

        def _authenticated(self) -> bool:
            given = self.headers.get("Authorization", "")
            user, password = state.credentials or ("", "")
            expected = base64.b64encode(f"{user}:{password}".encode()).decode()
            return given == f"Basic {expected}"

        def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
            connection = http.client.HTTPConnection(*state.upstream, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in NOT_FORWARDED}
            headers["Host"] = f"{state.upstream[0]}:{state.upstream[1]}"
            if state.credentials is not None:
                headers.pop("Authorization", None)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                kept = {
                    k: v
                    for k, v in response.getheaders()
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
                }
                return response.status, kept, answer
            finally:
                connection.close()

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _drop(self, status: int, headers: dict[str, str], body: bytes) -> None:
            """The answer announced whole, half of it sent, the connection closed."""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    for method in ("GET", "HEAD", "PUT", "DELETE", "PROPFIND", "PROPPATCH", "REPORT",
                   "MKCALENDAR", "MKCOL", "OPTIONS", "POST", "MOVE"):  # fmt: skip
        setattr(Handler, f"do_{method}", Handler._any)
    return Handler


def _privileges_read_only(answer: bytes, paths: set[str]) -> bytes:
    """The privilege set the server reports, cut to reading, in the responses for `paths`."""

    def cut(match: re.Match[bytes]) -> bytes:
        response = match.group(0)
        href = re.search(rb"<(?:\w+:)?href>([^<]+)</", response)
        if href is None or not any(href.group(1).decode().startswith(p) for p in paths):
            return response
        return re.sub(
            rb"<((?:\w+:)?)current-user-privilege-set>.*?</(?:\w+:)?current-user-privilege-set>",
            rb"<\1current-user-privilege-set><\1privilege><\1read/></\1privilege>"
            rb"</\1current-user-privilege-set>",
            response,
            flags=re.S,
        )

    return re.sub(rb"<(?:\w+:)?response>.*?</(?:\w+:)?response>", cut, answer, flags=re.S)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class DavServer:
    """A running server as the tests use it: the address given to the provider (the proxy's),
    the account, and how to reach the calendars behind the provider's back."""

    name: str
    url: str
    home: str  # the calendar-home-set's path
    proxy: ProxyState
    read_only_calendar: str = ""
    tasks_calendar: str = ""
    username: str = USERNAME
    password: str = PASSWORD
    # Where the server keeps an event's file, given its calendar's name and the event's
    # (Radicale: one file per event; Xandikos keeps them in a git repository).
    storage: Path | None = None

    def stored_file(self, calendar: str, name: str) -> Path | None:
        if self.storage is None:
            return None
        collection = calendar.rstrip("/").rsplit("/", 1)[-1]
        return self.storage / "collection-root" / self.username / collection / name

    def http(self, method: str, url: str, body: str = "", **headers: str) -> requests.Response:
        return requests.request(
            method,
            url if url.startswith("http") else self.url + url,
            data=body.encode(),
            headers=headers,
            auth=(self.username, self.password),
            timeout=30,
        )

    def make_calendar(
        self, name: str, components: tuple[str, ...] = ("VEVENT",), time_zone: str = ""
    ) -> str:
        comps = "".join(f'<C:comp name="{c}"/>' for c in components)
        zone = (
            "<C:calendar-timezone>BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tests//FR\r\n"
            f"BEGIN:VTIMEZONE\r\nTZID:{time_zone}\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n"
            "</C:calendar-timezone>"
            if time_zone
            else ""
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            f"<D:displayname>{name}</D:displayname>"
            f"<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set>"
            f"{zone}</D:prop></D:set></C:mkcalendar>"
        )
        url = f"{self.url}{self.home}{name}/"
        answer = self.http("MKCALENDAR", url, body, **{"Content-Type": "application/xml"})
        assert answer.status_code == 201, (answer.status_code, answer.text)
        return url

    def put(self, calendar: str, name: str, ical: str) -> str:
        answer = self.http("PUT", calendar + name, ical, **{"Content-Type": "text/calendar"})
        assert answer.status_code in (201, 204), (answer.status_code, answer.text)
        return answer.headers.get("ETag", "")

    def delete(self, calendar: str, name: str) -> None:
        answer = self.http("DELETE", calendar + name)
        assert answer.status_code in (200, 204), answer.status_code

    def get(self, calendar: str, name: str) -> requests.Response:
        answer = self.http("GET", calendar + name)
        answer.encoding = "utf-8"  # Xandikos names no charset: requests would read Latin-1
        return answer

    def invalidate_sync_tokens(self) -> None:
        """Every sync token the server has given so far is refused from now on (by the server
        itself: the proxy puts an unknown token in their place)."""
        with self.proxy.lock:
            self.proxy.refused_tokens |= self.proxy.seen_tokens


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"The server exited with {process.returncode}:\n{log.read_text()}")
        try:
            requests.request("OPTIONS", url, timeout=1)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"The server did not answer on {url}:\n{log.read_text()}"
                ) from None
            time.sleep(0.1)


@contextmanager
def serving(args: list[str], url: str, log: Path) -> Iterator[None]:
    """The server `args` starts, once it answers at `url`; stopped on the way out."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(url, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection the tests drop on purpose


@contextmanager
def _proxy(state: ProxyState) -> Iterator[str]:
    server = _Quiet(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


RADICALE_RIGHTS = """
[root]
user: .+
collection:
permissions: R

[read-only]
user: .+
collection: {user}/lecture-seule
permissions: r

[principal]
user: .+
collection: {user}
permissions: RW

[calendars]
user: .+
collection: {user}/[^/]+
permissions: rw
"""


@contextmanager
def radicale(directory: Path) -> Iterator[DavServer]:
    """Radicale with htpasswd authentication and per-collection rights: the account's own
    calendars are writable, "lecture-seule" (made on disk before start) only readable."""
    (directory / "htpasswd").write_text(f"{USERNAME}:{PASSWORD}\n")
    (directory / "rights").write_text(RADICALE_RIGHTS)
    shared = directory / "collections" / "collection-root" / USERNAME / "lecture-seule"
    shared.mkdir(parents=True)
    (shared / ".Radicale.props").write_text(
        '{"tag": "VCALENDAR", "D:displayname": "Lecture seule"}'
    )
    port = free_port()
    args = [
        sys.executable, "-m", "radicale", "--config", "",
        "--server-hosts", f"127.0.0.1:{port}",
        "--auth-type", "htpasswd",
        "--auth-htpasswd-filename", str(directory / "htpasswd"),
        "--auth-htpasswd-encryption", "plain",
        "--rights-type", "from_file", "--rights-file", str(directory / "rights"),
        "--storage-filesystem-folder", str(directory / "collections"),
        "--logging-level", "warning",
    ]  # fmt: skip
    with serving(args, f"http://127.0.0.1:{port}/", directory / "radicale.log"):
        state = ProxyState(upstream=("127.0.0.1", port), credentials=None)
        with _proxy(state) as url:
            server = DavServer("radicale", url, f"/{USERNAME}/", state)
            server.storage = directory / "collections"
            server.read_only_calendar = f"{url}/{USERNAME}/lecture-seule/"
            server.tasks_calendar = server.make_calendar("taches", ("VTODO",))
            yield server


@contextmanager
def xandikos(directory: Path) -> Iterator[DavServer]:
    """Xandikos, single user, behind the proxy asking for Basic credentials (Xandikos's own
    --htpasswd needs TLS); its read-only calendar is one the proxy refuses writes to and
    reports as readable only, as an ACL would."""
    port = free_port()
    args = [
        sys.executable, "-m", "xandikos", "serve", "-d", str(directory / "data"),
        "--defaults", "-l", "127.0.0.1", "-p", str(port),
        "--current-user-principal", "/user/",
    ]  # fmt: skip
    with serving(args, f"http://127.0.0.1:{port}/", directory / "xandikos.log"):
        state = ProxyState(upstream=("127.0.0.1", port), credentials=(USERNAME, PASSWORD))
        with _proxy(state) as url:
            server = DavServer("xandikos", url, "/user/calendars/", state)
            server.read_only_calendar = server.make_calendar("lecture-seule")
            state.read_only.add("/user/calendars/lecture-seule/")
            server.tasks_calendar = server.make_calendar("taches", ("VTODO",))
            yield server
