"""calendarView/delta: https://learn.microsoft.com/graph/api/event-delta.

The sync state lives in the tokens, signed: a first round lists what is in the window, page
by page, and ends with a deltaLink; a later round from it lists what changed since, removed
entries as `@removed`. A token the store no longer honours is a 410 SyncStateNotFound.

As Graph really answers (sandbox/README.md, "Where the sandbox follows Graph rather than its
reference pages"), an occurrence of a recurring series comes bare: `id`, `type`,
`seriesMasterId`, `start`, `end` and the `@odata` annotations, nothing else. Its series master
comes whole, with the first occurrence's times, in a first round when the series begins inside
the window, and in a later round when the master itself changed; otherwise not at all (read it
with GET /me/events/{id}). Exceptions (moved or edited occurrences) come whole. A deleted
occurrence, or the old dates of a rescheduled series, come with no `@removed`: only the
master, changed, says something happened to the series.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from bisect import bisect_right
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.timezones import iana_zone
from sandbox.microsoft.errors import not_in_delta
from sandbox.microsoft.formats import b64url, tz
from sandbox.microsoft.graph import Graph
from sandbox.microsoft.identity import AccessToken
from sandbox.microsoft.odata import odata, window
from sandbox.microsoft.render import DEFAULT_PAGE_SIZE, bare_json, event_json, view_of
from sandbox.paging import Candidates, ListingMemory
from sandbox.server import HTTPError, Request, Response
from sandbox.store import Account, Calendar, Event

if TYPE_CHECKING:
    from sandbox.core import Sandbox


class Delta:
    def __init__(self, sandbox: Sandbox, graph: Graph) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.graph = graph
        self._delta_key = secrets.token_bytes(32)
        self.memory = ListingMemory(self.store)

    def delta(self, request: Request, account: Account, token: AccessToken) -> Response:
        calendar = self.graph.calendar(account, request.params.get("calendar"))
        return self._delta(request, account, calendar)

    def _sign(self, state: dict[str, Any]) -> str:
        payload = b64url(json.dumps(state, separators=(",", ":")).encode())
        mac = b64url(hmac.new(self._delta_key, payload.encode(), hashlib.sha256).digest()[:16])
        return f"{payload}.{mac}"

    def _unsign(self, token: str) -> dict[str, Any] | None:
        payload, _, mac = token.partition(".")
        expected = b64url(hmac.new(self._delta_key, payload.encode(), hashlib.sha256).digest()[:16])
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return None
        try:
            state = json.loads(_b64url_decode(payload))
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def _delta(self, request: Request, account: Account, calendar: Calendar) -> Response:
        """https://learn.microsoft.com/graph/api/event-delta: state lives in the tokens."""
        view = view_of(request, select=False, expand=False)
        for name in ("filter", "orderby", "search", "top", "skip"):
            if odata(request, name):
                raise not_in_delta(name)
        skip_token, delta_token = odata(request, "skiptoken"), odata(request, "deltatoken")
        gone = HTTPError(410, "SyncStateNotFound", "The sync state generation is not found.")
        if skip_token or delta_token:
            state = self._unsign(skip_token or delta_token or "")
            if (
                state is None
                or state.get("u") != account.uid
                or state.get("c") != calendar.id
                or state.get("m") not in ({"full", "changes"} if skip_token else {"delta"})
                or int(state.get("b", 0)) < calendar.min_valid_seq
            ):
                raise gone
            if state["m"] == "delta":  # a new round of changes since that point
                state = {**state, "m": "changes", "r": self.store.seq, "k": state["b"]}
            zone_name = state.get("z")
            if zone_name and not view.applied:
                view.zone_name, view.zone = zone_name, tz(iana_zone(zone_name) or "UTC")
        else:
            start, end = window(request)
            state = {
                "m": "full",
                "u": account.uid,
                "c": calendar.id,
                "s": start.timestamp(),
                "e": end.timestamp(),
                "b": self.store.seq,
                "r": self.store.seq,
                "k": "",
            }
        state["z"] = view.zone_name if view.zone_name != "UTC" else None
        window_start = datetime.fromtimestamp(state["s"], UTC)
        window_end = datetime.fromtimestamp(state["e"], UTC)
        size = view.page_size or DEFAULT_PAGE_SIZE

        def master_in_window(e: Event) -> bool:
            return not e.deleted and e.is_master and window_start <= e.start_utc() < window_end

        def in_window(e: Event) -> bool:
            return (
                not e.deleted
                and e.status != "cancelled"
                and not e.is_master
                and e.start_utc() < window_end
                and e.end_utc() > window_start
            )

        values: list[dict[str, Any]] = []
        if state["m"] == "full":
            # Everything in the window now, by id; changes made during the round come again in
            # the next one, since the deltaLink starts from the seq the round started at. What
            # is in the window is worked out again only once the calendar has changed.
            in_view = self.memory.derived(
                ("window", account.uid, calendar.id, state["s"], state["e"]),
                calendar,
                lambda events: Candidates.of(
                    (e for e in events if in_window(e) or master_in_window(e)), lambda e: e.id
                ),
            )
            start = bisect_right(in_view.keys, state["k"])
            page = in_view.events[start : start + size]
            more = len(in_view.events) - start > size
            for event in page:
                values.append(self._entry(account, event, view))
            if page:
                state["k"] = page[-1].id
        else:
            changed = self.memory.derived(
                ("changes", account.uid, calendar.id),
                calendar,
                lambda events: Candidates.of(events, lambda e: e.seq),
            )
            start = bisect_right(changed.keys, int(state["k"]))
            end = bisect_right(changed.keys, state["r"], lo=start)
            page = changed.events[start : min(end, start + size)]
            more = end - start > size
            for event in page:
                if in_window(event) or (event.is_master and not event.deleted):
                    values.append(self._entry(account, event, view))
                elif event.is_occurrence and event.deleted:
                    continue  # Graph says nothing of a deleted occurrence: its master changed
                else:
                    values.append(
                        {
                            "@odata.type": "#microsoft.graph.event",
                            "id": event.id,
                            "@removed": {"reason": "deleted"},
                        }
                    )
            if page:
                state["k"] = page[-1].seq
        path = request.path
        body: dict[str, Any] = {
            "@odata.context": f"{view.base}/v1.0/$metadata#Collection(event)",
            "value": values,
        }
        if more:
            body["@odata.nextLink"] = f"{view.base}{path}?$skiptoken={self._sign(state)}"
        else:
            end_state = {
                "m": "delta",
                "u": account.uid,
                "c": calendar.id,
                "s": state["s"],
                "e": state["e"],
                "b": state["r"],
                "z": state.get("z"),
            }
            body["@odata.deltaLink"] = f"{view.base}{path}?$deltatoken={self._sign(end_state)}"
        applied = ["odata.track-changes", *view.applied]
        return Response.json(body, headers={"Preference-Applied": ", ".join(applied)})

    def _entry(self, account: Account, event: Event, view: Any) -> dict[str, Any]:
        if event.is_occurrence and not event.is_exception:
            return bare_json(event, view)
        whole = event_json(account, event, view, self.sandbox.http_url)
        return {"@odata.type": "#microsoft.graph.event", **whole}


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
