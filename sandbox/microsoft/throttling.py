"""Outlook's limit of 4 concurrent requests per mailbox, enforced every time.

https://learn.microsoft.com/graph/throttling-limits (Outlook service limits). A request
takes a slot of its mailbox when it is identified, before fault rules and the handler run;
a fifth one at the same time gets 429. The thread-local state also keeps the request being
handled, which Graph's error answers echo (client-request-id).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sandbox.microsoft.identity import Identity
from sandbox.server import Request
from sandbox.store import Account

MAILBOX_CONCURRENCY = 4  # https://learn.microsoft.com/graph/throttling-limits (Outlook)


@dataclass
class Slot:
    """One request being handled for a mailbox (Outlook's 4-concurrent-requests limit)."""

    email: str
    throttled: bool
    started: float = field(default_factory=time.monotonic)
    claimed: bool = False


class MailboxConcurrency:
    def __init__(self, identity: Identity, lock: threading.RLock, local: threading.local) -> None:
        self.identity = identity
        self.store = identity.store
        self._lock = lock
        self._local = local
        self._inflight: dict[str, list[Slot]] = {}

    def identify(self, request: Request, *, counted: bool) -> Account | None:
        try:
            self._local.request = request
            token = request.bearer()
            if not token:
                return None
            with self._lock:
                record = self.identity.access_tokens.get(token)
                if record is None:
                    return None
                account = self.store.account(record.email)
                if account is None or not counted or record.expires <= time.time():
                    return account
                slots = self._inflight.setdefault(record.email, [])
                now = time.monotonic()
                # A slot left behind by a crashed request must not throttle a mailbox forever.
                slots[:] = [s for s in slots if now - s.started < 300]
                slot = Slot(record.email, throttled=len(slots) >= MAILBOX_CONCURRENCY)
                if not slot.throttled:
                    slots.append(slot)
            request._ms_slot = slot  # type: ignore[attr-defined]
            stack = self._local.__dict__.setdefault("slots", [])
            stack.append(slot)
            return account
        except Exception:  # identify must never raise
            return None

    def busy(self) -> int:
        """Requests running now, every mailbox counted."""
        with self._lock:
            return sum(len(slots) for slots in self._inflight.values())

    def release(self, slot: Slot | None) -> None:
        if slot is None:
            return
        stack = self._local.__dict__.get("slots", [])
        if slot in stack:
            stack.remove(slot)
        with self._lock:
            slots = self._inflight.get(slot.email, [])
            if slot in slots:
                slots.remove(slot)

    def release_unclaimed_slot(self) -> None:
        # The core answered from a fault rule without calling the handler: free the slot that
        # `identify` took for this request.
        stack = self._local.__dict__.get("slots", [])
        if stack and not stack[-1].claimed:
            self.release(stack[-1])
