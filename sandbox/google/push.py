"""events.watch and channels.stop, and the notifications a watched calendar sends.

https://developers.google.com/calendar/api/guides/push: a `sync` message when a channel
opens, then `exists` on every change, sent from a worker thread, never from the request
that made the change.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import requests

from sandbox.google.api import Call, calendar_of
from sandbox.google.errors import GoogleError
from sandbox.google.formats import b64
from sandbox.server import Response
from sandbox.store import GOOGLE, Account, Calendar, Event

if TYPE_CHECKING:
    from sandbox.core import Sandbox

logger = logging.getLogger("sandbox.google")


CHANNEL_TTL = 7 * 24 * 3600  # seconds, when the client asks for no expiration
CHANNEL_MAX_TTL = 30 * 24 * 3600


# The ids of calendars Google generates (holidays, contacts' birthdays, week numbers...):
# "<name>#<kind>@group.v.calendar.google.com".
GENERATED_CALENDAR = re.compile(r"#[^@]+@group\.v\.calendar\.google\.")


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


class Push:
    def __init__(self, sandbox: Sandbox, lock: threading.Lock, secret: bytes) -> None:
        self.store = sandbox.store
        self.lock = lock  # the OAuth state's: GoogleSandbox.lock
        self.secret = secret  # names a calendar's resource id
        self.channels: dict[str, Channel] = {}
        self.notifier = Notifier(sandbox.options.notification_timeout)
        self.store.on_change(self._on_change)

    def events_watch(self, call: Call) -> Response:
        calendar = calendar_of(call)
        if GENERATED_CALENDAR.search(calendar.id):
            # Holiday, birthday (contacts) and other calendars Google makes: no push.
            raise GoogleError(
                400,
                "pushNotSupportedForRequestedResource",
                "Push notifications are not supported by this resource.",
            )
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
        resource_id = b64(
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

    def channels_stop(self, call: Call) -> Response:
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

    def stop(self) -> None:
        self.notifier.stop()


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
