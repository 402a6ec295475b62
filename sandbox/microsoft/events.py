"""Events: calendarView, list, create, get, update, delete, instances.

https://learn.microsoft.com/graph/api/resources/event. A create retried with the same
transactionId gives back the event it made; a change to a series' times or pattern drops
its exceptions, as Outlook does.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import secrets
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from core.timezones import iana_zone
from sandbox.microsoft.errors import denied
from sandbox.microsoft.formats import json_object, normalize_property_id, tz
from sandbox.microsoft.graph import Graph
from sandbox.microsoft.identity import AccessToken
from sandbox.microsoft.odata import window
from sandbox.microsoft.recurrence import rrule_from_json
from sandbox.microsoft.render import EVENT_PROPERTIES, etag, event_json, view_of
from sandbox.server import HTTPError, Request, Response
from sandbox.store import Account, Calendar, Event, expand_series, new_graph_id

if TYPE_CHECKING:
    from sandbox.core import Sandbox


# Properties a client may send when creating or updating an event; others are refused.
WRITABLE_EXTRAS = (
    "attendees",
    "categories",
    "importance",
    "sensitivity",
    "showAs",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
    "locations",
    "isDraft",
)


class Events:
    def __init__(self, sandbox: Sandbox, graph: Graph) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.graph = graph
        self._transactions: dict[tuple[str, str], tuple[str, str]] = {}

    def calendar_view(self, request: Request, account: Account, token: AccessToken) -> Response:
        calendar = self.graph.calendar(account, request.params.get("calendar"))
        view = view_of(request)
        start, end = window(request)
        events = [
            e
            for e in self.graph.live(calendar)
            if not e.is_master and e.start_utc() < end and e.end_utc() > start
        ]
        events = self.graph.filter_and_order(account, events, request)
        context = f"{request.base_url}/v1.0/$metadata#users('{account.uid}')/calendarView"
        return self.graph.paged(request, view, events, context, account=account)

    def list_events(self, request: Request, account: Account, token: AccessToken) -> Response:
        calendar = self.graph.calendar(account, request.params.get("calendar"))
        view = view_of(request)
        events = [e for e in self.graph.live(calendar) if not e.is_occurrence]
        events = self.graph.filter_and_order(account, events, request)
        context = f"{request.base_url}/v1.0/$metadata#users('{account.uid}')/events"
        return self.graph.paged(request, view, events, context, account=account)

    def create_event(self, request: Request, account: Account, token: AccessToken) -> Response:
        calendar = self.graph.calendar(account, request.params.get("calendar"))
        view = view_of(request, select=False, expand=False)
        event = self._create_event(account, calendar, json_object(request))
        location = f"{request.base_url}/v1.0/Users('{account.uid}')/Events('{event.id}')"
        return Response.json(
            event_json(account, event, view, self.sandbox.http_url),
            201,
            {"Location": location, **view.headers()},
        )

    def _lookup(self, request: Request, account: Account) -> tuple[Calendar, Event]:
        calendar_id = request.params.get("calendar")
        in_default = "calendar" not in request.params and "/me/calendar/" not in request.path
        return self.graph.find_event(
            account,
            calendar_id,
            request.params["event"],
            any_calendar=in_default,
        )

    def get_event(self, request: Request, account: Account, token: AccessToken) -> Response:
        view = view_of(request)
        _, event = self._lookup(request, account)
        return Response.json(
            event_json(account, event, view, self.sandbox.http_url), headers=view.headers()
        )

    def update_event(self, request: Request, account: Account, token: AccessToken) -> Response:
        view = view_of(request, select=False, expand=False)
        calendar, event = self._lookup(request, account)
        if not calendar.can_edit:
            raise denied()
        match = request.headers.get("if-match")
        if match and match.strip() != "*" and match.strip() != etag(event):
            raise HTTPError(
                412,
                "ErrorIrresolvableConflict",
                "The send or update operation "
                "could not be performed because the change key passed in the "
                "request does not match the current change key for the item.",
            )
        updated = self._update_event(account, calendar, event, json_object(request))
        return Response.json(
            event_json(account, updated, view, self.sandbox.http_url), headers=view.headers()
        )

    def delete_event(self, request: Request, account: Account, token: AccessToken) -> Response:
        calendar, event = self._lookup(request, account)
        if not calendar.can_edit:
            raise denied()
        self.store.delete(account, calendar, event)
        return Response(204)

    def instances(self, request: Request, account: Account, token: AccessToken) -> Response:
        view = view_of(request)
        calendar, master = self._lookup(request, account)
        start, end = window(request)
        events = [
            e
            for e in self.graph.live(calendar)
            if e.series_id == master.id and e.start_utc() < end and e.end_utc() > start
        ]
        events = self.graph.filter_and_order(account, events, request)
        context = f"{request.base_url}/v1.0/$metadata#Collection(event)"
        return self.graph.paged(request, view, events, context, account=account)

    def _apply_fields(self, event: Event, body: dict[str, Any], *, creating: bool) -> bool:
        """Apply Graph event properties to `event`; True if its times or recurrence changed."""
        unknown = [k for k in body if not k.startswith("@") and k not in EVENT_PROPERTIES]
        if unknown:
            raise HTTPError(
                400,
                "RequestBodyRead",
                f"The property '{unknown[0]}' does not exist "
                "on type 'microsoft.graph.event'. Make sure to only use property "
                "names that are defined by the type.",
            )
        graph = dict(event.extra.get("graph") or {})
        timing = False
        if "subject" in body:
            event.title = str(body["subject"] or "")
        if "body" in body:
            value = body["body"] or {}
            if not isinstance(value, dict):
                raise HTTPError(400, "RequestBodyRead", "'body' must be an itemBody object.")
            kind = str(value.get("contentType") or "text").lower()
            event.description = str(value.get("content") or "")
            graph["bodyType"] = "html" if kind == "html" else "text"
        if "location" in body:
            value = body["location"] or {}
            event.location = str(value.get("displayName") or "") if isinstance(value, dict) else ""
        for name in WRITABLE_EXTRAS:
            if name in body:
                graph[name] = copy.deepcopy(body[name])
        if body.get("isOnlineMeeting") and not event.online_url:
            event.online_url = f"https://teams.sandbox.test/l/meetup-join/{secrets.token_hex(12)}"
        elif body.get("isOnlineMeeting") is False:
            event.online_url = ""
        if creating and not (body.get("start") and body.get("end")):
            raise _invalid_event(
                "Your request can't be completed. The start and end of the event are required."
            )
        if any(k in body for k in ("start", "end", "isAllDay")):
            timing = True
            self._apply_times(event, body, creating=creating)
        if "recurrence" in body:
            if event.is_occurrence:
                raise _invalid_event("An occurrence of a series cannot have a recurrence.")
            event.recurrence = rrule_from_json(body["recurrence"]) if body["recurrence"] else []
            timing = True
        properties = body.get("singleValueExtendedProperties")
        if properties is not None:
            if not isinstance(properties, list):
                raise HTTPError(
                    400, "RequestBodyRead", "'singleValueExtendedProperties' must be a list."
                )
            for item in properties:
                key = normalize_property_id(item.get("id") if isinstance(item, dict) else None)
                if key is None or not isinstance(item, dict):
                    raise HTTPError(
                        400,
                        "ErrorInvalidProperty",
                        "The extended property id "
                        f"'{item.get('id') if isinstance(item, dict) else item}' is "
                        "not valid.",
                    )
                event.private_properties[key] = str(item.get("value", ""))
        event.extra["graph"] = graph
        return timing

    def _apply_times(self, event: Event, body: dict[str, Any], *, creating: bool) -> None:
        all_day = bool(body.get("isAllDay", event.all_day if not creating else False))
        start_local, start_zone = _parse_dtz(body.get("start"), "start", event, "start")
        end_local, end_zone = _parse_dtz(body.get("end"), "end", event, "end")
        if all_day:
            if start_local.time() != datetime.min.time() or end_local.time() != datetime.min.time():
                raise _invalid_event("The start and end of an all-day event must be at midnight.")
            if end_local.date() <= start_local.date():
                raise _invalid_event("The end of an all-day event must be after its start.")
            event.start, event.end = start_local.date(), end_local.date()
            event.time_zone = start_zone
            return
        start = start_local.replace(tzinfo=tz(start_zone))
        end = end_local.replace(tzinfo=tz(end_zone)).astimezone(tz(start_zone))
        if end < start:
            raise _invalid_event("The end of the event must not be before its start.")
        event.start, event.end, event.time_zone = start, end, start_zone

    def _create_event(self, account: Account, calendar: Calendar, body: dict[str, Any]) -> Event:
        if not calendar.can_edit:
            raise denied()
        transaction = body.get("transactionId")
        if transaction is not None and not isinstance(transaction, str):
            raise HTTPError(400, "RequestBodyRead", "'transactionId' must be a string.")
        event = Event(
            id=new_graph_id(),
            calendar_id=calendar.id,
            ical_uid="040000008200E00074C5B7101A82E00800000000" + secrets.token_hex(28).upper(),
            title="",
            start=date.today(),
            end=date.today(),
            transaction_id=transaction or "",
        )
        self._apply_fields(event, body, creating=True)
        with self.store.lock:
            # A retried create with the same transactionId gives back the event it made.
            if transaction:
                seen = self._transactions.get((account.email, transaction))
                if seen is not None:
                    existing = account.calendars.get(seen[0], calendar).events.get(seen[1])
                    if existing is not None and not existing.deleted:
                        return existing
            self.store.save(account, calendar, event)
            if transaction:
                self._transactions[(account.email, transaction)] = (calendar.id, event.id)
            if event.is_master:
                self._expand(account, calendar, event)
        return event

    def _expand(self, account: Account, calendar: Calendar, master: Event) -> None:
        for occurrence in expand_series(master):
            occurrence.id = new_graph_id()
            occurrence.extra = copy.deepcopy(master.extra)
            self.store.save(account, calendar, occurrence)

    def _update_event(
        self, account: Account, calendar: Calendar, event: Event, body: dict[str, Any]
    ) -> Event:
        with self.store.lock:
            updated = dataclasses.replace(
                event,
                private_properties=dict(event.private_properties),
                extra=copy.deepcopy(event.extra),
                recurrence=list(event.recurrence),
            )
            timing = self._apply_fields(updated, body, creating=False)
            if updated.is_occurrence:
                updated.is_exception = True
            self.store.save(account, calendar, updated)
            if event.is_master or updated.is_master:
                occurrences = [
                    e for e in calendar.events.values() if e.series_id == event.id and not e.deleted
                ]
                if timing:
                    # Outlook drops a series' exceptions when its pattern or times change.
                    for occurrence in occurrences:
                        self.store.delete(account, calendar, occurrence)
                    if updated.is_master:
                        self._expand(account, calendar, updated)
                else:
                    for occurrence in occurrences:
                        if occurrence.is_exception:
                            continue
                        copy_ = dataclasses.replace(
                            occurrence,
                            title=updated.title,
                            description=updated.description,
                            location=updated.location,
                            online_url=updated.online_url,
                            private_properties=dict(updated.private_properties),
                            extra=copy.deepcopy(updated.extra),
                        )
                        self.store.save(account, calendar, copy_)
        return updated


def _invalid_event(message: str) -> HTTPError:
    return HTTPError(400, "ErrorInvalidRequest", message)


def _parse_dtz(value: Any, name: str, event: Event, attribute: str) -> tuple[datetime, str]:
    """A dateTimeTimeZone as (naive local time, IANA zone); the event's own if absent."""
    if value is None:
        current = getattr(event, attribute)
        if isinstance(current, datetime):
            local = current.astimezone(tz(event.time_zone))
            return local.replace(tzinfo=None), event.time_zone
        return datetime.combine(current, datetime.min.time()), event.time_zone
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise HTTPError(400, "RequestBodyRead", f"'{name}' must be a dateTimeTimeZone object.")
    zone_name = value.get("timeZone") or "UTC"
    iana = iana_zone(str(zone_name))
    if iana is None:
        raise HTTPError(
            400,
            "TimeZoneNotSupportedException",
            "A valid TimeZone value must be "
            f"specified. The following TimeZone value is not supported: "
            f"'{zone_name}'.",
        )
    text = re.sub(r"(\.\d{6})\d+", r"\1", value["dateTime"].strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPError(
            400,
            "RequestBodyRead",
            f"Cannot convert the literal '{value['dateTime']}' "
            "to the expected type 'Edm.DateTime'.",
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(tz(iana)).replace(tzinfo=None)
    return parsed, iana
