"""Writing the formations' events: one PUT or DELETE each, made safe to repeat by ETags.

A create is `If-None-Match: *` (RFC 4791 section 5.3.4, RFC 9110 section 13.1.2): sent again
after a lost answer, it is refused with 412 and the event is there, not twice. An update is
`If-Match`: on the ETag the export knows when the write carries one, else `*`, so that an
event the learner deleted is not brought back by a PUT (which would create it again).
"""

from __future__ import annotations

from urllib.parse import quote

from calendars.errors import ProviderError, Unauthorized
from calendars.providers.caldav.connection import (
    DAV,
    NAMESPACES,
    Session,
    multistatus,
    prop_text,
    resource_name,
    xml_props,
)
from calendars.providers.caldav.normalize import ical_uid
from calendars.providers.types import Outcome, Write, WriteKind, WriteOutcome

ICALENDAR = {"Content-Type": "text/calendar; charset=utf-8"}


def write_events(session: Session, writes: list[Write]) -> list[WriteOutcome]:
    """One outcome per write; a 401 on any raises Unauthorized for the whole call."""
    outcomes = []
    for write in writes:
        try:
            outcomes.append(_write(session, write))
        except Unauthorized:
            raise
        except ProviderError as error:
            outcomes.append(WriteOutcome(write.key, Outcome.FAILED, error=error))
    return outcomes


def event_url(calendar_id: str, event_id: str) -> str:
    return calendar_id.rstrip("/") + "/" + quote(event_id, safe="")


def _write(session: Session, write: Write) -> WriteOutcome:
    if write.kind == WriteKind.CREATE:
        return _create(session, write)
    if write.kind == WriteKind.UPDATE:
        return _update(session, write, expected=write.version)
    if write.kind == WriteKind.DELETE:
        return _delete(session, write)
    return _find(session, write)


def _body(write: Write) -> str:
    ical = (write.body or {}).get("ical")
    if not ical:
        raise ProviderError("No iCalendar body to write.", permanent=True)
    return str(ical)


def _create(session: Session, write: Write) -> WriteOutcome:
    url = event_url(write.calendar_id, write.event_id)
    response = session.request(
        "PUT", url, _body(write), {**ICALENDAR, "If-None-Match": "*"}, allow=(412,)
    )
    if response.status == 412:  # an earlier attempt landed: the engine updates it
        return WriteOutcome(write.key, Outcome.EXISTS, event_id=write.event_id)
    return WriteOutcome(
        write.key, Outcome.OK, event_id=write.event_id, version=_etag_after(session, url, response)
    )


def _update(session: Session, write: Write, *, expected: str) -> WriteOutcome:
    """PUT on condition. A 412 (or 404) on `*`: the event is gone (GONE, as Google's 404 and
    Graph's). A 412 on a known ETag: someone changed the event since; the formation's
    content wins, as it does at Google and Outlook, so the write is made again on the ETag
    the event has now, once."""
    url = event_url(write.calendar_id, write.event_id)
    condition = expected or "*"
    for attempt in range(2):
        response = session.request(
            "PUT", url, _body(write), {**ICALENDAR, "If-Match": condition}, allow=(404, 410, 412)
        )
        if response.status in (404, 410):
            return WriteOutcome(write.key, Outcome.GONE, event_id=write.event_id)
        if response.status != 412:
            return WriteOutcome(
                write.key,
                Outcome.OK,
                event_id=write.event_id,
                version=_etag_after(session, url, response),
            )
        current = _current_etag(session, url)
        if current is None:
            return WriteOutcome(write.key, Outcome.GONE, event_id=write.event_id)
        if condition == "*" or attempt:
            break
        condition = current
    error = ProviderError(
        "The event changed at the CalDAV server while it was being written (412).", status=412
    )
    return WriteOutcome(write.key, Outcome.FAILED, error=error)


def _delete(session: Session, write: Write) -> WriteOutcome:
    url = event_url(write.calendar_id, write.event_id)
    expected = write.version
    headers = {"If-Match": expected} if expected else {}
    response = session.request("DELETE", url, headers=headers, allow=(404, 410, 412))
    if response.status in (404, 410):
        return WriteOutcome(write.key, Outcome.GONE, event_id=write.event_id)
    if response.status == 412:  # changed since: deleted all the same, as the engine asked
        response = session.request("DELETE", url, allow=(404, 410))
        if response.status in (404, 410):
            return WriteOutcome(write.key, Outcome.GONE, event_id=write.event_id)
    return WriteOutcome(write.key, Outcome.OK, event_id=write.event_id)


def _find(session: Session, write: Write) -> WriteOutcome:
    """The events whose UID is the formation's (calendar-query with a prop-filter, RFC 4791
    section 9.7.2)."""
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><C:calendar-query {NAMESPACES}>'
        + xml_props((DAV, "getetag"))
        + '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        + '<C:prop-filter name="UID"><C:text-match collation="i;octet">'
        + ical_uid(write.uid)
        + "</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter>"
        + "</C:calendar-query>"
    )
    response = session.request(
        "REPORT",
        write.calendar_id,
        body,
        {"Content-Type": "application/xml; charset=utf-8", "Depth": "1"},
    )
    entries, _ = multistatus(response)
    found = sorted(
        (resource_name(e.href), prop_text(e.props, DAV, "getetag"))
        for e in entries
        if e.status // 100 == 2 and resource_name(e.href)
    )
    if not found:
        return WriteOutcome(write.key, Outcome.MISSING)
    return WriteOutcome(
        write.key,
        Outcome.OK,
        event_id=found[0][0],
        version=found[0][1],
        duplicates=[name for name, _ in found[1:]],
    )


def _etag_after(session: Session, url: str, response: object) -> str:
    """The ETag a PUT answered with; a server that changed the data as it stored it sends
    none (RFC 4791 section 5.3.4), and it is then read."""
    headers = getattr(response, "headers", None) or {}
    etag = headers.get("ETag") or ""
    return etag or _current_etag(session, url) or ""


def _current_etag(session: Session, url: str) -> str | None:
    """The resource's ETag now; None when it is gone."""
    response = session.propfind(url, (DAV, "getetag"), allow=(404, 410))
    if response.status in (404, 410):
        return None
    entries, _ = multistatus(response)
    # Some servers (Xandikos) answer 207 for a resource that is gone, its 404 inside.
    found = [e for e in entries if e.status // 100 == 2 and e.props]
    return prop_text(found[0].props, DAV, "getetag") if found else None
