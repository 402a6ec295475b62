"""The Microsoft half of the sandbox: its parts, their routers, and what the core asks of it."""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from sandbox.microsoft.batch import Batch
from sandbox.microsoft.delta import Delta
from sandbox.microsoft.events import Events
from sandbox.microsoft.graph import Graph
from sandbox.microsoft.identity import READ_SCOPES, USER_SCOPES, WRITE_SCOPES, Identity
from sandbox.microsoft.mailbox import Mailbox
from sandbox.microsoft.signin import SignIn
from sandbox.microsoft.subscriptions import Subscription, Subscriptions
from sandbox.microsoft.throttling import MailboxConcurrency
from sandbox.microsoft.tokens import TokenEndpoint
from sandbox.server import Router
from sandbox.store import Account

if TYPE_CHECKING:
    from sandbox.core import Sandbox


class MicrosoftSandbox:
    """The identity platform and Graph, wired: the parts share one lock for their state
    (grants and tokens, subscriptions, in-flight requests)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self._lock = threading.RLock()
        # The request a thread is handling, and the mailbox slots it holds.
        local = threading.local()
        self.identity = Identity(sandbox, self._lock)
        self.tokens = TokenEndpoint(sandbox, self.identity, self._lock)
        self.signin = SignIn(sandbox, self.identity, self._lock)
        self.throttle = throttle = MailboxConcurrency(self.identity, self._lock, local)
        self.graph = Graph(sandbox, self.identity, throttle, self._lock, local)
        self.mailbox = Mailbox(self.graph)
        self.events = Events(sandbox, self.graph)
        self.delta = Delta(sandbox, self.graph)
        self.batch = Batch(sandbox, local)
        self.control = Router()
        self.push = Subscriptions(sandbox, self._lock, self.control)
        self._install_graph()

    @property
    def routers(self) -> list[Router]:
        return [self.control, self.tokens.router, self.signin.router, self.graph.router]

    # --- the interface the core and the control API use ------------------------------------

    def revoke_account(self, account: Account) -> None:
        """Every grant of `account` is revoked: its refresh tokens give invalid_grant."""
        self.identity.revoke_account(account)

    def issued_tokens(self) -> set[str]:
        """Every access and refresh token handed out, for tests that look for leaks."""
        return self.identity.issued_tokens()

    def expire_access_tokens(self, account: Account) -> None:
        """Every access token of `account` is refused from now on (401)."""
        self.identity.expire_access_tokens(account)

    def stop(self) -> None:
        """Stops background work (push notifications)."""
        self.push.notifier.stop()

    def subscriptions(self) -> list[Subscription]:
        return self.push.subscriptions()

    def send_lifecycle_notification(self, subscription_id: str, lifecycle_event: str) -> None:
        """See Subscriptions.send_lifecycle_notification."""
        self.push.send_lifecycle_notification(subscription_id, lifecycle_event)

    def reauthorization_required(self, subscription_id: str) -> None:
        self.push.reauthorization_required(subscription_id)

    def subscription_removed(self, subscription_id: str) -> None:
        self.push.subscription_removed(subscription_id)

    def missed(self, subscription_id: str) -> None:
        self.push.missed(subscription_id)

    # --- what tests look into, under `_lock` --------------------------------------------------

    @property
    def _subscriptions(self) -> dict[str, Subscription]:
        return self.push.by_id

    @property
    def _queue(self) -> queue.Queue[tuple[str, str, dict[str, Any]] | None]:
        return self.push.notifier.queue

    @property
    def deliveries(self) -> deque[dict[str, Any]]:
        """The last notification POSTs, for tests and the inspection page."""
        return self.push.notifier.deliveries

    # --- Graph: routes ----------------------------------------------------------------------------

    def _install_graph(self) -> None:
        route = self.graph.route
        me, cal = r"/v1\.0/me", r"(?:/calendars/(?P<calendar>[^/]+)|/calendar)"
        route("GET", [me], "graph.me", needs=USER_SCOPES)(self.mailbox.me)
        route("GET", [me + r"/calendars"], "graph.calendars.list", needs=READ_SCOPES)(
            self.mailbox.list_calendars
        )
        route("GET", [me + cal], "graph.calendars.get", needs=READ_SCOPES)(
            self.mailbox.get_calendar
        )
        route(
            "GET",
            [me + r"/calendarView", me + cal + r"/calendarView"],
            "graph.calendarView",
            needs=READ_SCOPES,
        )(self.events.calendar_view)
        route(
            "GET",
            # Graph also takes the function-call form that msgraph-sdk sends: delta().
            [me + r"/calendarView/delta(?:\(\))?", me + cal + r"/calendarView/delta(?:\(\))?"],
            "graph.delta",
            needs=READ_SCOPES,
        )(self.delta.delta)
        route(
            "GET", [me + r"/events", me + cal + r"/events"], "graph.events.list", needs=READ_SCOPES
        )(self.events.list_events)
        route(
            "POST",
            [me + r"/events", me + cal + r"/events"],
            "graph.events.create",
            needs=WRITE_SCOPES,
        )(self.events.create_event)
        one = [me + r"/events/(?P<event>[^/]+)", me + cal + r"/events/(?P<event>[^/]+)"]
        route("GET", one, "graph.events.get", needs=READ_SCOPES)(self.events.get_event)
        route("PATCH", one, "graph.events.update", needs=WRITE_SCOPES)(self.events.update_event)
        route("DELETE", one, "graph.events.delete", needs=WRITE_SCOPES)(self.events.delete_event)
        route("GET", [p + r"/instances" for p in one], "graph.events.instances", needs=READ_SCOPES)(
            self.events.instances
        )
        route("POST", [r"/v1\.0/\$batch"], "graph.batch", counted=False)(self.batch.handle)
        subs, push = r"/v1\.0/subscriptions", self.push
        route("POST", [subs], "graph.subscriptions.create", counted=False)(push.create_subscription)
        route("GET", [subs], "graph.subscriptions.list", counted=False)(push.list_subscriptions)
        one_sub = [subs + r"/(?P<subscription>[^/]+)"]
        route("GET", one_sub, "graph.subscriptions.get", counted=False)(push.get_subscription)
        route("PATCH", one_sub, "graph.subscriptions.update", counted=False)(
            push.update_subscription
        )
        route("DELETE", one_sub, "graph.subscriptions.delete", counted=False)(
            push.delete_subscription
        )
        route(
            "POST",
            [subs + r"/(?P<subscription>[^/]+)/reauthorize"],
            "graph.subscriptions.reauthorize",
            counted=False,
        )(push.reauthorize)
        self.graph.route_the_rest()


def install(sandbox: Sandbox) -> MicrosoftSandbox:
    provider = MicrosoftSandbox(sandbox)
    sandbox.routers.extend(provider.routers)
    return provider
