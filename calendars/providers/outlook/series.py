"""Recurring series in Graph's delta listings: occurrences come bare and take what they share
with their series from its master.

Graph's `calendarView/delta` gives each occurrence of a series with only `id`, `type`,
`seriesMasterId`, `start` and `end`: no subject, place, all-day flag or body. The master comes
whole in a first round when its series begins inside the window, and in a later round when it
changed; otherwise it is read with GET /me/events/{id}, in one `$batch` per page for all the
series the page lacks. Reported in microsoftgraph/microsoft-graph-docs #1716, #7632, #22197;
https://learn.microsoft.com/graph/delta-query-events
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

from django.conf import settings

from calendars.errors import ProviderError, Unauthorized
from calendars.providers.outlook.batch import inner_error
from calendars.providers.outlook.graph import graph_request
from calendars.providers.types import Removed

BATCH_SIZE = 20  # Graph's limit per JSON batch
# Masters already seen by this process, per access token (so per account, and, a token lasting
# an hour, per sync): a listing's pages read each series once. A master that changes comes
# whole in the next listing, which replaces what is kept here.
MASTERS_KEPT_FOR = 600.0  # seconds
MASTERS_KEPT = 5000
_masters: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = OrderedDict()
_masters_lock = threading.Lock()
# What an occurrence keeps of its own; everything else it takes from its master.
OWN = {
    "@odata.type", "@odata.etag", "@odata.id", "id", "type", "seriesMasterId", "start", "end",
    "originalStart", "recurrence", "changeKey", "transactionId", "createdDateTime",
    "lastModifiedDateTime",
}  # fmt: skip
# What an occurrence takes from its master: what the import keeps (normalize.EVENT_FIELDS),
# and how the learner shows as and answered; never the body, which no page shows.
SHARED = [
    "subject", "location", "isAllDay", "isCancelled", "showAs", "onlineMeeting",
    "onlineMeetingUrl", "iCalUId", "originalStartTimeZone", "webLink", "responseStatus",
    "isOrganizer",
]  # fmt: skip


def is_bare(entry: Any) -> bool:
    """An occurrence Graph gave without its series' details."""
    return (
        isinstance(entry, dict)
        and entry.get("type") == "occurrence"
        and bool(entry.get("seriesMasterId"))
        and "subject" not in entry
        and "@removed" not in entry
    )


def is_master(entry: Any) -> bool:
    return (
        isinstance(entry, dict) and entry.get("type") == "seriesMaster" and "@removed" not in entry
    )


def hydrate(
    access_token: str, entries: list[Any]
) -> tuple[list[Any], list[dict[str, Any]], list[Removed], int]:
    """The page's entries with every bare occurrence completed from its master, and without
    the masters; the masters themselves; the series whose master no longer exists (their
    occurrences go with it); and how many occurrences were left out for that. Masters the page
    lacks are read in `$batch` requests, once per series for a while (`_kept`)."""
    account = hashlib.sha256(access_token.encode()).hexdigest()[:32]
    masters = {entry["id"]: entry for entry in entries if is_master(entry)}
    _keep(account, masters)
    wanted = {entry["seriesMasterId"] for entry in entries if is_bare(entry)} - set(masters)
    kept = _kept(account, wanted)
    wanted -= set(kept)
    found, gone = read_masters(access_token, sorted(wanted)) if wanted else ({}, set())
    _keep(account, found)
    known = {**kept, **found, **masters}
    completed, orphans = [], 0
    for entry in entries:
        if is_master(entry):
            continue
        if is_bare(entry):
            master = known.get(entry["seriesMasterId"])
            if master is None:
                orphans += 1  # its series is gone: dropped with it
                continue
            entry = {**{k: v for k, v in master.items() if k not in OWN}, **entry}
        completed.append(entry)
    gone_series = [Removed(series) for series in sorted(gone)]
    return completed, list(masters.values()), gone_series, orphans


def _keep(account: str, masters: dict[str, dict[str, Any]]) -> None:
    now = time.monotonic()
    with _masters_lock:
        for series, master in masters.items():
            _masters[(account, series)] = (now, master)
            _masters.move_to_end((account, series))
        while len(_masters) > MASTERS_KEPT:
            _masters.popitem(last=False)


def _kept(account: str, series_ids: set[str]) -> dict[str, dict[str, Any]]:
    now = time.monotonic()
    found = {}
    with _masters_lock:
        for series in series_ids:
            kept = _masters.get((account, series))
            if kept is not None and now - kept[0] < MASTERS_KEPT_FOR:
                found[series] = kept[1]
    return found


def read_masters(access_token: str, ids: list[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Series masters by id, read with GET /me/events/{id} in `$batch` requests sent one after
    the other (Outlook runs at most 4 requests per mailbox at once, and one batch runs up to 4);
    returns those found and the ids Graph no longer knows.
    https://learn.microsoft.com/graph/api/event-get"""
    select = ",".join(["id", "type", *SHARED])
    found: dict[str, dict[str, Any]] = {}
    gone: set[str] = set()
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start : start + BATCH_SIZE]
        requests_ = [
            {
                "id": str(number),
                "method": "GET",
                "url": f"/me/events/{quote(series, safe='')}?$select={select}",
            }
            for number, series in enumerate(chunk)
        ]
        data = graph_request(
            access_token,
            "POST",
            f"{settings.OUTLOOK_GRAPH_URL}/$batch",
            json={"requests": requests_},
        )
        try:
            answers = {str(a.get("id")): a for a in data["responses"]}
        except (KeyError, TypeError, AttributeError):
            raise ProviderError("Microsoft Graph sent an answer that could not be read.") from None
        for number, series in enumerate(chunk):
            answer = answers.get(str(number)) or {}
            status = answer.get("status")
            body = answer.get("body") if isinstance(answer.get("body"), dict) else {}
            if status == 200 and body.get("id"):
                found[series] = body
            elif status in (404, 410):
                gone.add(series)
            elif status == 401:
                raise Unauthorized("Microsoft Graph refused the access token.")
            else:
                raise inner_error(answer)
    return found, gone
