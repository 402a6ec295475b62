"""Personal API tokens: created and revoked by the learner, checked by the JSON API."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.models import API_TOKEN_MARKER, API_TOKEN_PREFIX_LENGTH, ApiToken, SecurityEvent
from accounts.security import security_event_record

# Writing last_used_at on every call would turn each API read into a write.
LAST_USED_PRECISION = timedelta(minutes=1)
# The addresses a token remembers (the first use from any other is logged).
SEEN_ADDRESSES_KEPT = 20


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user: Any, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`: the row, and the token itself, which is never stored."""
    token = API_TOKEN_MARKER + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user, name=name, prefix=token[:API_TOKEN_PREFIX_LENGTH], digest=_digest(token)
    )
    _log(SecurityEvent.Kind.API_TOKEN_CREATED, row)
    return row, token


def _log(kind: str, row: ApiToken, *, address: str | None = None) -> None:
    # The name and the start of the token: enough to tell which one, nothing to use.
    security_event_record(
        kind=kind, user_id=row.user_id, detail=f"{row.name} ({row.prefix}…)", address=address
    )


def api_token_authenticate(*, token: str, address: str = "") -> Any | None:
    """The active user a token belongs to, or None for an unknown or revoked token. The
    first use from an `address` the token was not used from lately is logged."""
    if not token.startswith(API_TOKEN_MARKER) or len(token) > 200:
        return None
    digest = _digest(token)
    row = (
        # The profile with the user: the answer is in the learner's zone.
        ApiToken.objects.select_related("user", "user__profile")
        .filter(digest=digest, revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    # The lookup is by digest, which an attacker cannot steer byte by byte; the comparison
    # keeps it that way should the lookup ever change.
    if row is None or not hmac.compare_digest(row.digest, digest):
        return None
    now = timezone.now()
    changes: dict[str, Any] = {}
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_PRECISION:
        changes["last_used_at"] = now
    if address and address not in row.seen_addresses:
        changes["seen_addresses"] = [*row.seen_addresses, address][-SEEN_ADDRESSES_KEPT:]
        _log(SecurityEvent.Kind.API_TOKEN_NEW_ADDRESS, row, address=address)
    if changes:
        ApiToken.objects.filter(pk=row.pk).update(**changes)
    return row.user


def api_token_revoke(*, api_token: ApiToken) -> None:
    if api_token.revoked_at is None:
        api_token.revoked_at = timezone.now()
        api_token.save(update_fields=["revoked_at"])
        _log(SecurityEvent.Kind.API_TOKEN_REVOKED, api_token)
