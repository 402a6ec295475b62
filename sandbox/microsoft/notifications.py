"""What the sandbox sends to an application's notification URLs.

https://learn.microsoft.com/graph/change-notifications-delivery-webhooks: the validation
handshake when a subscription is made or moved (synchronous, as Graph's), then change and
lifecycle notifications, POSTed from one worker thread, several in one POST when they pile
up, never from the request that made the change.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import threading
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from sandbox.microsoft.formats import now_iso, with_query
from sandbox.server import HTTPError

if TYPE_CHECKING:
    from sandbox.core import Sandbox

logger = logging.getLogger("sandbox.microsoft")


class Notifier:
    def __init__(self, sandbox: Sandbox, lock: threading.RLock) -> None:
        self.sandbox = sandbox
        self._lock = lock
        self.queue: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stopping = False
        # The last notification POSTs, for tests and the inspection page.
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=500)

    def validate(self, url: Any, name: str) -> str:
        """The notification URL, once it has answered Graph's validation request."""
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
                    with_query(url, {"validationToken": token}),
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

    def enqueue(self, kind: str, url: str, item: dict[str, Any]) -> None:
        self.ensure_worker()
        self.queue.put((kind, url, item))

    def ensure_worker(self) -> None:
        with self._lock:
            if self._stopping or (self._worker is not None and self._worker.is_alive()):
                return
            self._worker = threading.Thread(
                target=self._deliver_forever, name="sandbox-graph-notifications", daemon=True
            )
            self._worker.start()

    def _deliver_forever(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            # Graph sends several notifications in one POST when they pile up.
            while len(batch) < 100:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)
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
            "at": now_iso(),
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

    def stop(self) -> None:
        """Stops the worker thread; nothing is sent after this."""
        self._stopping = True
        worker = self._worker
        if worker is not None and worker.is_alive():
            self.queue.put(None)
            worker.join(timeout=2)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
