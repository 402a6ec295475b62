"""events.list and events.instances: pages, sync tokens, and what a listing includes.

https://developers.google.com/calendar/api/guides/sync: a listing ends with a sync token
from which a later one lists only what changed; a token the store no longer honours is a
410. A page token resumes after the last entry's sort key, in the snapshot the listing
began with, and is bound to the query it came from.

A page of events.list costs the page, not the calendar: the listing's sorted candidates are
kept between its pages (sandbox/paging.py) and each is tested again as a page takes it.
That gives what sorting the calendar again would: an event listed at a later page is one
whose seq is at most the snapshot, so it was in the calendar, unchanged, when the candidates
were sorted; they hold every such event that could pass `_matches` (tested with `loose`, which
leaves out what depends on other events: a series' master, its occurrences in the window).
"""

from __future__ import annotations

import hashlib
import json
import zoneinfo
from bisect import bisect_right
from collections.abc import Callable
from datetime import UTC, date, datetime
from itertools import islice
from operator import itemgetter
from typing import Any

from sandbox.google.api import Call, calendar_of
from sandbox.google.errors import GoogleError, full_sync_required, invalid_parameter, not_found
from sandbox.google.events import Events
from sandbox.google.formats import Sealer, etag, parse_rfc3339, rfc3339_ms, role
from sandbox.paging import Candidates, ListingMemory
from sandbox.server import Request, Response
from sandbox.store import Calendar, Event, Store, utcnow

MAX_PAGE_SIZE = 2500

# events.list parameters Google refuses beside a syncToken (the guide on incremental sync).
NOT_WITH_SYNC_TOKEN = [
    "timeMin",
    "timeMax",
    "updatedMin",
    "q",
    "orderBy",
    "iCalUID",
    "privateExtendedProperty",
    "sharedExtendedProperty",
]
# Query parameters that do not change which entries a list returns (left out of page tokens).
COSMETIC_PARAMETERS = {
    "pageToken",
    "maxResults",
    "fields",
    "prettyPrint",
    "key",
    "quotaUser",
    "userIp",
    "alt",
    "oauth_token",
    "maxAttendees",
    "alwaysIncludeEmail",
    "timeZone",
}


class Listing:
    def __init__(self, store: Store, sealer: Sealer, events: Events) -> None:
        self.store = store
        self.sealer = sealer
        self.events = events
        self.memory = ListingMemory(store)

    def events_list(self, call: Call) -> Response:
        params = call.params
        calendar = calendar_of(call)
        if "syncToken" in params:
            for name in NOT_WITH_SYNC_TOKEN:
                if name in params:
                    raise GoogleError(
                        400,
                        "badRequest",
                        f"Sync token cannot be used with other query parameters: {name} is "
                        "not allowed with syncToken.",
                        location=name,
                        location_type="parameter",
                    )
        single = params.get("singleEvents", False)
        if params.get("orderBy") == "startTime" and not single:
            raise GoogleError(
                400,
                "badRequest",
                "The requested ordering is not available for the particular query.",
                location="orderBy",
            )
        time_min, time_max = params.get("timeMin"), params.get("timeMax")
        if time_min and time_max and time_max <= time_min:
            raise GoogleError(
                400,
                "timeRangeEmpty",
                "The specified time range is empty.",
                location="timeMax",
                domain="calendar",
            )
        for name in ("privateExtendedProperty", "sharedExtendedProperty"):
            for constraint in params.get(name, []):
                if "=" not in constraint:
                    raise invalid_parameter(
                        name, f"Invalid value '{constraint}': expected propertyName=value."
                    )
        calendar_key = f"{call.account.email}/{calendar.id}"
        since = None
        if "syncToken" in params:
            data = self.sealer.unseal("sync", params["syncToken"])
            if (
                not isinstance(data, list)
                or len(data) != 2
                or data[0] != calendar_key
                or not isinstance(data[1], int)
                or data[1] < calendar.min_valid_seq
            ):
                raise full_sync_required()
            since = data[1]
        with self.store.lock:
            snapshot = self.store.seq
        order = "changes" if since is not None else params.get("orderBy", "id")
        in_window = None
        if not single and since is None and ("timeMin" in params or "timeMax" in params):
            # A series master is in the window when one of its live occurrences is.
            time_min, time_max = params.get("timeMin"), params.get("timeMax")
            in_window = self.memory.derived(
                ("series in window", call.account.email, calendar.id, time_min, time_max),
                calendar,
                lambda entries: {
                    e.series_id
                    for e in entries
                    if e.is_occurrence
                    and not (e.deleted or e.status == "cancelled")
                    and _overlaps(e, time_min, time_max)
                },
            )

        def include(event: Event, *, loose: bool = False) -> bool:
            return self._matches(
                event,
                calendar,
                params,
                since=since,
                single=single,
                series_in_window=in_window,
                loose=loose,
            )

        return self._list_response(
            call, calendar, None, include, order=order, snapshot=snapshot, since=since
        )

    def _matches(
        self,
        event: Event,
        calendar: Calendar,
        params: dict[str, Any],
        *,
        since: int | None,
        single: bool,
        series_in_window: set[str] | None = None,
        loose: bool = False,
    ) -> bool:
        """Whether a listing shows `event`; `loose`: whether it may, from the event alone."""
        if since is not None and event.seq <= since:
            return False
        cancelled = event.deleted or event.status == "cancelled"
        updated_min = params.get("updatedMin")
        show_deleted = since is not None or params.get("showDeleted", False)
        if updated_min is not None:
            if event.updated < updated_min:
                return False
            show_deleted = True  # "entries deleted since this time will always be included"
        if single:
            if event.is_master or (cancelled and not show_deleted):
                return False
        elif event.is_occurrence:
            # Only exceptions show beside their master; cancelled ones even without
            # showDeleted, as the reference says, unless the whole series is gone.
            if not event.is_exception:
                return False
            if not loose:
                master = calendar.events.get(event.series_id)
                if master is None or master.deleted:
                    return False
        elif cancelled and not show_deleted:
            return False
        if "eventTypes" in params and event.event_type not in params["eventTypes"]:
            return False
        if since is not None:
            return True
        if "iCalUID" in params and event.ical_uid != params["iCalUID"]:
            return False
        for constraint in params.get("privateExtendedProperty", []):
            name, _, value = constraint.partition("=")
            if event.private_properties.get(name) != value:
                return False
        for constraint in params.get("sharedExtendedProperty", []):
            name, _, value = constraint.partition("=")
            shared = (event.extra.get("extendedProperties") or {}).get("shared") or {}
            if shared.get(name) != value:
                return False
        if "q" in params:
            needle = params["q"].casefold()
            haystack = f"{event.title}\n{event.description}\n{event.location}".casefold()
            if needle not in haystack:
                return False
        if event.is_master and loose:
            return True  # its series may meet the window by its occurrences, whatever its times
        if event.is_master and series_in_window is not None:
            return event.id in series_in_window
        return _overlaps(event, params.get("timeMin"), params.get("timeMax"))

    def _list_response(
        self,
        call: Call,
        calendar: Calendar,
        entries: list[Event] | None,
        include: Callable[..., bool],
        *,
        order: str,
        snapshot: int,
        since: int | None,
    ) -> Response:
        """One page of an events collection, with page tokens that resume after a sort key;
        `entries` None: the calendar's, through the listing's memory."""
        params = call.params
        fingerprint = _fingerprint(call.request, calendar.id)
        after: tuple[Any, ...] | None = None
        if "pageToken" in params:
            state = self.sealer.unseal("page", params["pageToken"])
            if not isinstance(state, dict) or state.get("f") != fingerprint:
                raise invalid_parameter("pageToken", "Invalid page token value.")
            snapshot, after = state["s"], tuple(state["k"])
        key = _sort_key(order)
        size = min(params.get("maxResults", 250), MAX_PAGE_SIZE)
        if entries is None:
            page, more = self._calendar_page(
                call, calendar, include, key, (fingerprint, snapshot, order, since), after, size
            )
            latest = self.memory.derived(
                ("updated", call.account.email, calendar.id),
                calendar,
                lambda events: max((e.updated for e in events), default=None),
            )
        else:
            selected = []
            for event in entries:
                if event.seq > snapshot:
                    continue  # changed since the listing began: the next sync token brings it
                if include(event):
                    item_key = key(event)
                    if after is None or item_key > after:
                        selected.append((item_key, event))
            selected.sort(key=itemgetter(0))
            page, more = [event for _, event in selected[:size]], len(selected) > size
            latest = max((e.updated for e in entries), default=None)
        zone = params.get("timeZone")
        kept = call.fields.kept_of("items") if call.fields is not None else None
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": etag(f"{calendar.id}:{snapshot}"),
            "summary": calendar.name,
            "description": "",
            "updated": rfc3339_ms(latest or utcnow()),
            "timeZone": calendar.time_zone,
            "accessRole": role(calendar),
            "defaultReminders": [{"method": "popup", "minutes": 10}] if calendar.primary else [],
            "items": [
                self.events.render(
                    call.account, calendar, event, zone=zone, minimal=True, kept=kept
                )
                for event in page
            ],
        }
        if more:
            body["nextPageToken"] = self.sealer.seal(
                "page", {"f": fingerprint, "s": snapshot, "k": list(key(page[-1]))}
            )
        elif call.method.id == "events.list":
            body["nextSyncToken"] = self.sealer.seal(
                "sync", [f"{call.account.email}/{calendar.id}", snapshot]
            )
        return call.respond(body)

    def _calendar_page(
        self,
        call: Call,
        calendar: Calendar,
        include: Callable[..., bool],
        key: Callable[[Event], tuple[Any, ...]],
        listing: tuple[str, int, str, int | None],
        after: tuple[Any, ...] | None,
        size: int,
    ) -> tuple[list[Event], bool]:
        """The page after `after` of a listing (its fingerprint, snapshot, order and since),
        and whether more follow."""
        snapshot = listing[1]

        def build(entries: list[Event]) -> Candidates:
            return Candidates.of(
                (e for e in entries if e.seq <= snapshot and include(e, loose=True)), key
            )

        candidates = self.memory.sorted(
            (call.account.email, calendar.id, *listing), calendar, build
        )
        start = 0 if after is None else bisect_right(candidates.keys, after)
        current = calendar.events
        page: list[Event] = []
        for event in islice(candidates.events, start, None):
            # Still the version the listing began with (a change or a deletion since takes a
            # new seq), and still shown: a series' master may have been deleted since.
            if current.get(event.id) is event and event.seq <= snapshot and include(event):
                page.append(event)
                if len(page) > size:
                    break
        return page[:size], len(page) > size

    def events_instances(self, call: Call) -> Response:
        params = call.params
        calendar = calendar_of(call)
        with self.store.lock:
            master = calendar.events.get(params["eventId"])
            if master is None:
                raise not_found()
            entries = (
                [e for e in calendar.events.values() if e.series_id == master.id]
                if master.is_master
                else [master]
            )
            snapshot = self.store.seq
        original = params.get("originalStart")
        wanted = parse_rfc3339(original) if original else None
        if original and wanted is None:
            raise invalid_parameter("originalStart", f"Invalid value '{original}'.")

        def include(event: Event) -> bool:
            if wanted is not None and (
                event.original_start is None
                or _as_utc(event.original_start, event.time_zone) != wanted
            ):
                return False
            return self._matches(event, calendar, params, since=None, single=True)

        return self._list_response(
            call, calendar, entries, include, order="startTime", snapshot=snapshot, since=None
        )


def _as_utc(value: datetime | date, zone: str) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(
        UTC
    )


def _overlaps(event: Event, time_min: datetime | None, time_max: datetime | None) -> bool:
    """Whether an event meets the window [time_min, time_max) (either bound may be open)."""
    if time_min is None and time_max is None:
        return True
    start, end = event.start_utc(), event.end_utc()
    if time_min is not None and end <= time_min and not start == end == time_min:
        return False
    return time_max is None or start < time_max


def _sort_key(order: str) -> Callable[[Event], tuple[Any, ...]]:
    if order == "startTime":
        return lambda e: (e.start_utc().timestamp(), e.id)
    if order in {"updated", "changes"}:
        return lambda e: (e.seq, e.id)
    return lambda e: (e.id,)


def _fingerprint(request: Request, calendar_id: str) -> str:
    """What a page token is bound to: the query minus paging and presentation."""
    items = sorted(
        (name, value)
        for name, values in request.query.items()
        if name not in COSMETIC_PARAMETERS
        for value in values
    )
    text = json.dumps([calendar_id, request.path, items])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
