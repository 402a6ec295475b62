"""Formats the Calendar API's parts share: timestamps, zones, ETags, access roles, and the
sealed page and sync tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zoneinfo
from datetime import UTC, datetime
from typing import Any

from sandbox.store import Calendar


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


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def role(calendar: Calendar) -> str:
    if calendar.primary:
        return "owner"
    return "writer" if calendar.can_edit else "reader"


def etag(text: str) -> str:
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:16] + '"'


class Sealer:
    """Page and sync tokens: data signed with a secret of the sandbox's, so that a client
    can neither forge nor alter one."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def seal(self, kind: str, data: Any) -> str:
        payload = json.dumps([kind, data], separators=(",", ":")).encode()
        signature = hmac.new(self.secret, payload, hashlib.sha256).digest()[:12]
        return b64(payload) + "." + b64(signature)

    def unseal(self, kind: str, token: str) -> Any:
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
