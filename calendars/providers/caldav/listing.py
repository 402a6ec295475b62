"""Listing a CalDAV calendar's events: in full over a window, then incrementally.

Full: a calendar-query (RFC 4791 section 7.8) with a time-range gives the resources of the
window, with their ETags only; they are read in pages of EVENTS_PAGE_SIZE, in the order of
their names, with calendar-multiget (section 7.9). Incremental: sync-collection (RFC 6578)
where the calendar has a DAV:sync-token, else the ETags of the window compared with those kept
from the last listing, skipped whole when the calendar's getctag has not changed.

The state a listing needs (the server's sync token, or the ctag and every ETag) travels in the
page and sync tokens the engine keeps: "c1." and compressed JSON.
"""

from __future__ import annotations

import base64
import json
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from calendars.errors import ProviderError, SyncTokenExpired
from calendars.providers.caldav import normalize
from calendars.providers.caldav.connection import (
    CALDAV,
    CALSERVER,
    DAV,
    NAMESPACES,
    Session,
    multistatus,
    prop_text,
    resource_name,
    xml_props,
)
from calendars.providers.types import EventPage, Removed, SeriesListed

STATE_PREFIX = "c1."
XML = {"Content-Type": "application/xml; charset=utf-8"}
# Answers to a sync-collection whose token the server no longer takes: 403 with the
# DAV:valid-sync-token precondition (RFC 6578 section 3.2, Radicale), 412 (Xandikos), 418
# (Nextcloud before 2024, after a deletion: python-caldav/caldav #183), and 409, 410 or 400.
REFUSED_TOKEN = (400, 403, 409, 410, 412, 418)


@dataclass(frozen=True)
class Indexed:
    name: str
    href: str
    etag: str


def encode(state: dict[str, Any]) -> str:
    packed = zlib.compress(json.dumps(state, separators=(",", ":")).encode())
    return STATE_PREFIX + base64.urlsafe_b64encode(packed).decode().rstrip("=")


def decode(token: str) -> dict[str, Any]:
    """A state this module wrote; anything else (another version, a damaged value) asks for a
    full listing again."""
    try:
        if not token.startswith(STATE_PREFIX):
            raise ValueError
        raw = token.removeprefix(STATE_PREFIX)
        state = json.loads(zlib.decompress(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))))
        if not isinstance(state, dict) or state.get("m") not in ("s", "e"):
            raise ValueError
        return state
    except (ValueError, zlib.error, TypeError):
        raise SyncTokenExpired("The stored CalDAV listing state could not be read.") from None


def full_page(
    session: Session, calendar: str, window: tuple[datetime, datetime], page: str, size: int
) -> EventPage:
    """One page of the full listing; the first fixes the state the next incremental listing
    starts from (taken before anything is read: what changes meanwhile comes next time)."""
    state = decode(page) if page else _collection_state(session, calendar)
    after = state.pop("a", "")
    index = [
        entry for entry in _listing_index(session, calendar, window, state) if entry.name > after
    ]
    chunk = index[:size]
    resources = _read(session, calendar, [entry.href for entry in chunk])
    result = EventPage(items=[])
    for resource in resources:
        expanded = normalize.expand(
            resource, window, username=session.account.username, floating=_zone(state)
        )
        result.items += expanded.events
        result.skipped += expanded.skipped
        if state["m"] == "e":
            state["e"][resource.name] = resource.etag
    if len(index) > size:
        result.next_page = encode({**state, "a": chunk[-1].name})
    else:
        result.sync_token = encode(state)
    return result


def incremental_page(
    session: Session,
    calendar: str,
    window: tuple[datetime, datetime],
    sync_token: str,
    page: str,
    size: int,
) -> EventPage:
    state = decode(page or sync_token)
    if state["m"] == "s":
        return _sync_collection(session, calendar, window, state, size)
    return _by_etags(session, calendar, window, state, size, sync_token)


def _collection_state(session: Session, calendar: str) -> dict[str, Any]:
    entries, _ = multistatus(
        session.propfind(
            calendar, (DAV, "sync-token"), (CALSERVER, "getctag"), (CALDAV, "calendar-timezone")
        )
    )
    props = entries[0].props if entries else {}
    zone = normalize.zone_of(prop_text(props, CALDAV, "calendar-timezone"))
    token = prop_text(props, DAV, "sync-token")
    if token:
        return {"m": "s", "t": token, "z": zone}
    return {"m": "e", "c": prop_text(props, CALSERVER, "getctag"), "e": {}, "z": zone}


def _zone(state: dict[str, Any]) -> ZoneInfo:
    """Where the listing reads floating times (RFC 5545 3.3.5 form #1): the calendar's own
    zone (RFC 4791 5.2.2), else the site's (a listing state written before it was kept has
    none)."""
    return normalize.floating_zone(str(state.get("z") or ""))


class _Indexes:
    """The window's index of the listings under way, kept from their first page to the next
    ones: asking the server for it again at every page made a listing cost as many whole
    calendar-queries as it has pages (14 for 5,000 events). A listing's state is fixed by its
    first page, before anything is read, so what changes meanwhile comes with the next
    incremental listing, and an index as it was then is all a page needs: a resource gone
    since is left out by the multiget that reads it. A listing resumed elsewhere (another
    process, after a restart) asks for the index again."""

    KEPT = 8

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: OrderedDict[tuple[str, ...], list[Indexed]] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> list[Indexed] | None:
        with self.lock:
            index = self.kept.get(key)
            if index is not None:
                self.kept.move_to_end(key)
            return index

    def put(self, key: tuple[str, ...], index: list[Indexed]) -> None:
        with self.lock:
            self.kept[key] = index
            while len(self.kept) > self.KEPT:
                self.kept.popitem(last=False)


_indexes = _Indexes()


def _listing_index(
    session: Session, calendar: str, window: tuple[datetime, datetime], state: dict[str, Any]
) -> list[Indexed]:
    """The window's index for the listing whose state is `state`: the server's for its first
    page, the same for the next ones while this process keeps it."""
    marker = str(state.get("t") or state.get("c") or "")
    if not marker:  # nothing tells this listing from a later one: no index kept
        return _window_index(session, calendar, window)
    key = (
        session.account.url,
        session.account.username,
        calendar,
        window[0].isoformat(),
        window[1].isoformat(),
        marker,
    )
    index = _indexes.get(key)
    if index is None:
        index = _window_index(session, calendar, window)
        _indexes.put(key, index)
    return index


def _window_index(
    session: Session, calendar: str, window: tuple[datetime, datetime]
) -> list[Indexed]:
    """The resources with an event in the window, names and ETags only, by name."""
    start, end = (moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") for moment in window)
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><C:calendar-query {NAMESPACES}>'
        + xml_props((DAV, "getetag"))
        + '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        + f'<C:time-range start="{start}" end="{end}"/>'
        + "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )
    response = session.request("REPORT", calendar, body, {**XML, "Depth": "1"})
    entries, _ = multistatus(response)
    found = {
        resource_name(entry.href): Indexed(
            resource_name(entry.href), entry.href, prop_text(entry.props, DAV, "getetag")
        )
        for entry in entries
        if entry.status // 100 == 2 and not _is_collection(entry.href, calendar)
    }
    return [found[name] for name in sorted(found)]


def _read(session: Session, calendar: str, hrefs: Iterable[str]) -> list[normalize.Resource]:
    """The resources at `hrefs`, with their data and ETags (calendar-multiget); those gone
    meanwhile are left out."""
    hrefs = list(hrefs)
    if not hrefs:
        return []
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><C:calendar-multiget {NAMESPACES}>'
        + xml_props((DAV, "getetag"), (CALDAV, "calendar-data"))
        + "".join(f"<D:href>{_escape(href)}</D:href>" for href in hrefs)
        + "</C:calendar-multiget>"
    )
    response = session.request("REPORT", calendar, body, {**XML, "Depth": "1"})
    entries, _ = multistatus(response)
    resources = []
    for entry in entries:
        data = prop_text(entry.props, CALDAV, "calendar-data")
        if entry.status // 100 != 2 or not data:
            continue
        etag = prop_text(entry.props, DAV, "getetag")
        resources.append(normalize.Resource(resource_name(entry.href), etag, data))
    return resources


def _sync_collection(
    session: Session,
    calendar: str,
    window: tuple[datetime, datetime],
    state: dict[str, Any],
    size: int,
) -> EventPage:
    """Changes since the token (RFC 6578 section 3.2); a truncated answer (507 on the
    collection, section 3.6) continues on the next page from the token it gave."""
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><D:sync-collection {NAMESPACES}>'
        f"<D:sync-token>{_escape(state['t'])}</D:sync-token><D:sync-level>1</D:sync-level>"
        + xml_props((DAV, "getetag"))
        + "</D:sync-collection>"
    )
    response = session.request("REPORT", calendar, body, XML, allow=REFUSED_TOKEN)
    if response.status in REFUSED_TOKEN:
        raise SyncTokenExpired(
            f"The CalDAV server refused the sync token ({response.status}): list again."
        )
    entries, token = multistatus(response)
    if not token:
        raise ProviderError("The CalDAV server's sync report carried no new sync token.")
    truncated = any(_is_collection(e.href, calendar) and e.status == 507 for e in entries)
    members = [e for e in entries if not _is_collection(e.href, calendar)]
    gone = [resource_name(e.href) for e in members if e.status in (404, 410)]
    changed = [e.href for e in members if e.status // 100 == 2]
    result = _changes(session, calendar, window, changed, gone, size, _zone(state))
    following = {"m": "s", "t": token, "z": state.get("z", "")}
    if truncated:
        result.next_page = encode(following)
    else:
        result.sync_token = encode(following)
    return result


def _by_etags(
    session: Session,
    calendar: str,
    window: tuple[datetime, datetime],
    state: dict[str, Any],
    size: int,
    sync_token: str,
) -> EventPage:
    """For servers without sync-collection: nothing to do while getctag stands still; else
    the window's ETags against those kept."""
    now = _collection_state(session, calendar)
    if now["m"] == "e" and now["c"] and now["c"] == state.get("c"):
        return EventPage(items=[], sync_token=sync_token)
    kept: dict[str, str] = state.get("e") or {}
    index = _window_index(session, calendar, window)
    changed = [entry.href for entry in index if kept.get(entry.name) != entry.etag]
    listed = {entry.name for entry in index}
    gone = [name for name in kept if name not in listed]
    result = _changes(session, calendar, window, changed, gone, size, _zone(now))
    etags = {entry.name: entry.etag for entry in index}
    result.sync_token = encode({"m": "e", "c": now.get("c", ""), "e": etags, "z": now["z"]})
    return result


def _changes(
    session: Session,
    calendar: str,
    window: tuple[datetime, datetime],
    changed: list[str],
    gone: list[str],
    size: int,
    floating: ZoneInfo,
) -> EventPage:
    """Changed resources read (EVENTS_PAGE_SIZE at a time) and given as the events they hold
    in the window; a series with every occurrence it now has there (SeriesListed: those
    stored and not among them go); a single event gone from the window, or cancelled, as
    Removed, as the deleted ones are."""
    result = EventPage(items=[Removed(name) for name in gone])
    read: set[str] = set()
    for start in range(0, len(changed), size):
        for resource in _read(session, calendar, changed[start : start + size]):
            read.add(resource.name)
            expanded = normalize.expand(
                resource, window, username=session.account.username, floating=floating
            )
            result.skipped += expanded.skipped
            if expanded.recurring:
                ids = frozenset(event.external_id for event in expanded.events)
                result.items += [*expanded.events, SeriesListed(resource.name, ids)]
            elif expanded.events:
                result.items += expanded.events
            elif expanded.cancelled or not expanded.skipped:
                result.items.append(Removed(resource.name))
    # Reported changed, then deleted before it could be read.
    result.items += [
        Removed(name)
        for name in (resource_name(href) for href in changed)
        if name not in read and name not in gone
    ]
    return result


def _is_collection(href: str, calendar: str) -> bool:
    return unquote(urlsplit(href).path).rstrip("/") == unquote(urlsplit(calendar).path).rstrip("/")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
