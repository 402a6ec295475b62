"""Google OAuth 2.0 and Calendar API v3, as the sandbox emulates them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from calendars.sandbox.core import Router
from calendars.sandbox.store import Account

if TYPE_CHECKING:
    from calendars.sandbox.core import Sandbox


class GoogleSandbox:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.router = Router()

    def revoke_account(self, account: Account) -> None:
        """Every grant of `account` is revoked: its refresh tokens give invalid_grant."""

    def expire_access_tokens(self, account: Account) -> None:
        """Every access token of `account` is refused from now on (401)."""

    def stop(self) -> None:
        """Stops background work (push notifications)."""


def install(sandbox: Sandbox) -> GoogleSandbox:
    provider = GoogleSandbox(sandbox)
    sandbox.routers.append(provider.router)
    return provider
