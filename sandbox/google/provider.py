"""The Google half of the sandbox: its parts, their routers, and what the core asks of it."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox.google.api import CalendarAPI, Call
from sandbox.google.authorize import Authorization, page_error
from sandbox.google.batch import Batch
from sandbox.google.calendar_list import Calendars
from sandbox.google.discovery import methods
from sandbox.google.errors import google_error, not_found, oauth_error
from sandbox.google.events import Events
from sandbox.google.formats import Sealer
from sandbox.google.listing import Listing
from sandbox.google.oauth import Grant, OAuthState
from sandbox.google.push import Channel, Push
from sandbox.google.tokens import TokenEndpoint
from sandbox.server import Request, Response, Router
from sandbox.store import Account

if TYPE_CHECKING:
    from sandbox.core import Sandbox


class GoogleSandbox:
    """Google's endpoints, wired: the OAuth state and the push channels share `lock`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.lock = threading.Lock()  # OAuth state and channels
        self.state = OAuthState(self.store, self.lock)
        # Signs page and sync tokens, and names the resources channels watch.
        sealer = Sealer(secrets.token_bytes(32))
        self.pages = Router(errors=page_error)
        self.oauth = Router(errors=oauth_error)
        self.router = Router(errors=google_error)
        self.authorization = Authorization(sandbox, self.state, self.pages)
        self.tokens = TokenEndpoint(sandbox, self.state, self.oauth)
        self.api = CalendarAPI(self.state, self.store)
        self.calendars = Calendars(self.store, sealer)
        self.events = Events(sandbox)
        self.listing = Listing(self.store, sealer, self.events)
        self.push = Push(sandbox, self.lock, sealer.secret)
        self.batch = Batch(sandbox)
        self._install_api()

    @property
    def routers(self) -> list[Router]:
        return [self.pages, self.oauth, self.router]

    # --- the interface the core and the control API use ------------------------------------

    def revoke_account(self, account: Account) -> None:
        """Every grant of `account` is revoked: its refresh tokens give invalid_grant."""
        self.state.revoke_account(account)

    def withdraw_scope(self, account: Account, scope: str) -> bool:
        """See OAuthState.withdraw_scope."""
        return self.state.withdraw_scope(account, scope)

    def issued_tokens(self) -> set[str]:
        """Every access and refresh token handed out, for tests that look for leaks."""
        return self.state.issued_tokens()

    def expire_access_tokens(self, account: Account) -> None:
        """Every access token of `account` is refused from now on (401)."""
        self.state.expire_access_tokens(account)

    def stop(self) -> None:
        """Stops background work (push notifications)."""
        self.push.stop()

    # --- what tests look into, under `lock` ---------------------------------------------------

    @property
    def refresh_tokens(self) -> dict[str, Grant]:
        return self.state.refresh_tokens

    @property
    def channels(self) -> dict[str, Channel]:
        return self.push.channels

    # --- Calendar API: routing ----------------------------------------------------------------

    def _install_api(self) -> None:
        implemented: dict[str, Callable[[Call], Response]] = {
            "calendarList.list": self.calendars.calendar_list_list,
            "calendarList.get": self.calendars.calendar_list_get,
            "calendars.get": self.calendars.calendars_get,
            "events.list": self.listing.events_list,
            "events.get": self.events.events_get,
            "events.insert": self.events.events_insert,
            "events.patch": self.events.events_patch,
            "events.update": self.events.events_update,
            "events.delete": self.events.events_delete,
            "events.instances": self.listing.events_instances,
            "events.watch": self.push.events_watch,
            "channels.stop": self.push.channels_stop,
        }
        for method in methods():
            self.router.route(
                method.http_method,
                method.pattern(),
                method.endpoint,
                identify=self.state.identify_bearer,
            )(self.api.handler(method, implemented.get(method.id)))
        self.router.route(
            "POST", r"/batch/calendar/v3", "google.batch", identify=self.state.identify_bearer
        )(self.batch.handle)
        for verb in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.router.route(verb, r"/calendar/v3(/.*)?", "google.unknown")(self._unknown_path)

    def _unknown_path(self, request: Request) -> Response:
        raise not_found()


def install(sandbox: Sandbox) -> GoogleSandbox:
    provider = GoogleSandbox(sandbox)
    sandbox.routers.extend(provider.routers)
    return provider
