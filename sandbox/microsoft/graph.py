"""Graph's requests: authenticated, checked, throttled, then handed to a handler.

A handler takes `(request, account, token)` and is registered with `Graph.route`, behind
the checks Graph makes: a valid access token, the scopes the route needs, the mailbox's
concurrency limit. Also what several handlers share: paging, $filter and $orderby, and
looking calendars and events up. Errors come in Graph's JSON shape.
https://learn.microsoft.com/graph/api/resources/event
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sandbox.microsoft.errors import denied, not_found
from sandbox.microsoft.formats import now_iso
from sandbox.microsoft.identity import USER_SCOPES, AccessToken, Identity
from sandbox.microsoft.odata import ORDER_KEYS, FilterParser, link, odata, odata_int
from sandbox.microsoft.render import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, View, event_json
from sandbox.microsoft.throttling import MailboxConcurrency, Slot
from sandbox.server import HTTPError, Request, Response, Router
from sandbox.store import Account, Calendar, Event

if TYPE_CHECKING:
    from sandbox.core import Sandbox


class Graph:
    def __init__(
        self,
        sandbox: Sandbox,
        identity: Identity,
        throttle: MailboxConcurrency,
        lock: threading.RLock,
        local: threading.local,
    ) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.identity = identity
        self.throttle = throttle
        self._lock = lock
        self._local = local
        self.router = Router(errors=self._graph_error)

    # --- routing ----------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> tuple[Account, AccessToken]:
        token = request.bearer()
        if not token:
            raise HTTPError(401, "InvalidAuthenticationToken", "Access token is empty.")
        with self._lock:
            record = self.identity.access_tokens.get(token)
        if record is None:
            raise HTTPError(
                401,
                "InvalidAuthenticationToken",
                "CompactToken parsing failed with error code: 80049217",
            )
        if record.expires <= time.time():
            raise HTTPError(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        account = self.store.account(record.email)
        if account is None:
            raise HTTPError(401, "InvalidAuthenticationToken", "The user does not exist.")
        return account, record

    def route(
        self,
        method: str,
        paths: list[str],
        endpoint: str,
        *,
        needs: set[str] | None = None,
        counted: bool = True,
    ) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
        """Register `handler(request, account, token)` on each path, behind Graph's checks."""

        def register(handler: Callable[..., Response]) -> Callable[..., Response]:
            def wrapper(request: Request) -> Response:
                slot: Slot | None = getattr(request, "_ms_slot", None)
                if slot is not None:
                    slot.claimed = True
                try:
                    account, token = self._authenticate(request)
                    if needs is not None and not (token.scopes & needs):
                        if needs is USER_SCOPES:
                            raise HTTPError(
                                403,
                                "Authorization_RequestDenied",
                                "Insufficient privileges to complete the operation.",
                            )
                        raise denied()
                    if slot is not None and slot.throttled:
                        self.sandbox.counters["graph.throttled.mailbox_concurrency"] += 1
                        raise HTTPError(
                            429,
                            "ApplicationThrottled",
                            "Application is over its MailboxConcurrency limit.",
                            headers={"Retry-After": "1"},
                        )
                    response = handler(request, account, token)
                    request_id = str(uuid.uuid4())
                    response.headers.setdefault("request-id", request_id)
                    response.headers.setdefault(
                        "client-request-id", request.headers.get("client-request-id", request_id)
                    )
                    return response
                finally:
                    self.throttle.release(slot)

            def identify(request: Request) -> Account | None:
                return self.throttle.identify(request, counted=counted)

            for path in paths:
                # Graph's paths are case-insensitive (/me/calendarview is common).
                self.router.route(method, f"(?i:{path})", endpoint, identify=identify)(wrapper)
            return handler

        return register

    def route_the_rest(self) -> None:
        """Anything else under /v1.0 answers in Graph's shape, as Graph does: routed last."""
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            self.router.route(
                method,
                r"/v1\.0(?:/.*)?",
                "graph.unknown",
                identify=lambda r: self.throttle.identify(r, counted=False),
            )(self._unknown)

    def _unknown(self, request: Request) -> Response:
        for candidate in self.router.routes:
            if candidate.endpoint != "graph.unknown" and candidate.pattern.match(request.path):
                raise HTTPError(
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                )
        segments = [s for s in request.path.split("/")[2:] if s]
        segment = unquote(segments[-1]) if segments else "v1.0"
        raise HTTPError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    def _graph_error(self, error: HTTPError) -> Response:
        self.throttle.release_unclaimed_slot()
        status, code, message = error.status, error.reason, error.message
        headers = dict(error.headers)
        if code == "rateLimitExceeded":
            # Graph throttles with 429 only; a 403 rate limit is Google's.
            status, code, message = 429, "TooManyRequests", "Too many requests."
        elif code == "quotaExceeded":
            # Graph has no daily quota: an exhausted per-mailbox budget (10,000 requests per
            # 10 minutes) is a 429 like any throttling, with a longer wait.
            status, code = 429, "TooManyRequests"
            message = "Application is over its request quota for this mailbox."
            headers.setdefault("Retry-After", "60")
        elif code == "backendError":
            if status == 503:
                code = "serviceNotAvailable"
                message = "The service is temporarily unavailable. Please retry later."
            else:
                code, message = "generalException", "General exception while processing."
        elif code == "authError":
            code = "InvalidAuthenticationToken"
            message = "Access token has expired or is not yet valid."
        if status == 401:
            headers.setdefault(
                "WWW-Authenticate",
                f'Bearer realm="", authorization_uri="{self.sandbox.https_url}/common/oauth2/'
                'authorize", client_id="00000003-0000-0000-c000-000000000000"',
            )
        request_id = str(uuid.uuid4())
        current = getattr(self._local, "request", None)
        client_request_id = (current.headers.get("client-request-id") if current else None) or (
            request_id
        )
        body = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": now_iso(),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        response = Response.json(body, status)
        response.headers.update(headers)
        response.headers.update({"request-id": request_id, "client-request-id": client_request_id})
        return response

    # --- what handlers share ----------------------------------------------------------------

    def paged(
        self,
        request: Request,
        view: View,
        items: list[Any],
        context: str,
        *,
        account: Account | None = None,
    ) -> Response:
        """Graph's paging: `$top` (or `odata.maxpagesize`) per page, `$skip` in the nextLink."""
        top, skip = odata_int(request, "top"), odata_int(request, "skip") or 0
        size = min(top or view.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        page = items[skip : skip + size]
        values = [
            event_json(account, item, view, self.sandbox.http_url) if account is not None else item
            for item in page
        ]
        body: dict[str, Any] = {"@odata.context": context, "value": values}
        if skip + size < len(items):
            body["@odata.nextLink"] = link(request, view.base, {"skip": str(skip + size)})
        return Response.json(body, headers=view.headers())

    def filter_and_order(
        self, account: Account, events: list[Event], request: Request
    ) -> list[Event]:
        text = odata(request, "filter")
        if text:
            predicate = FilterParser(text).parse()
            utc = View(base=request.base_url)
            events = [
                e
                for e in events
                if predicate(e, lambda e=e: event_json(account, e, utc, self.sandbox.http_url))
            ]
        order = odata(request, "orderby")
        keys: list[tuple[Callable[[Event], Any], bool]] = []
        for clause in (order or "").split(","):
            words = clause.split()
            if not words:
                continue
            getter = ORDER_KEYS.get(words[0].lower())
            descending = len(words) > 1 and words[1].lower() == "desc"
            if getter is None or (len(words) > 1 and words[1].lower() not in {"asc", "desc"}):
                raise HTTPError(400, "BadRequest", f"Invalid $orderby clause '{clause.strip()}'.")
            keys.append((getter, descending))
        events = sorted(events, key=lambda e: (e.start_utc(), e.id))
        for getter, descending in reversed(keys):
            events.sort(key=getter, reverse=descending)
        return events

    # --- lookups ----------------------------------------------------------------------------

    @staticmethod
    def calendar(account: Account, calendar_id: str | None) -> Calendar:
        if calendar_id is None:
            return account.primary
        calendar_id = unquote(calendar_id)
        if not calendar_id.startswith("AAMk"):
            raise HTTPError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        calendar = account.calendars.get(calendar_id)
        if calendar is None:
            raise not_found()
        return calendar

    def find_event(
        self, account: Account, calendar_id: str | None, event_id: str, *, any_calendar: bool
    ) -> tuple[Calendar, Event]:
        event_id = unquote(event_id)
        if not event_id.startswith("AAMk"):
            raise HTTPError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        calendars = (
            list(account.calendars.values())
            if any_calendar
            else [self.calendar(account, calendar_id)]
        )
        with self.store.lock:
            for calendar in calendars:
                event = calendar.events.get(event_id)
                if event is not None and not event.deleted and event.status != "cancelled":
                    return calendar, event
        raise not_found()

    def live(self, calendar: Calendar) -> list[Event]:
        with self.store.lock:
            events = list(calendar.events.values())
        return [e for e in events if not e.deleted and e.status != "cancelled"]
