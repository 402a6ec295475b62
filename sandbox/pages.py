"""The sandbox's own pages: accounts, calendars and events, fault controls, counters.

A person uses them to watch an exported formation arrive, to change an event the way a learner
would in Google Calendar or Outlook, and to provoke faults. Plain HTML forms, no JavaScript;
every value that comes from the store is escaped.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import datetime, timedelta
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from sandbox.faults import FAULT_KINDS
from sandbox.server import HTTPError, Request, Response, Router
from sandbox.store import (
    GOOGLE,
    Account,
    Calendar,
    Event,
    expand_series,
    new_google_id,
    new_graph_id,
)

if TYPE_CHECKING:
    from sandbox.core import Sandbox

PAGE_SIZE = 100

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24;background:#f4f6f8;line-height:1.45}
header{background:#3c4043;color:#fff;padding:.6rem 1rem}header a{color:#fff}
main{max-width:70rem;margin:0 auto;padding:1rem}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:1rem}
th,td{border:1px solid #d5dae1;padding:.3rem .5rem;text-align:left;vertical-align:top}
.card{background:#fff;border:1px solid #d5dae1;border-radius:6px;padding:.8rem 1rem;margin:.8rem 0}
label{display:block;font-weight:600;margin-top:.5rem}input,select,textarea{font:inherit}
button{font:inherit;padding:.3rem .8rem;cursor:pointer}.muted{color:#555}
:focus-visible{outline:3px solid #f2b705;outline-offset:2px}.cancelled{text-decoration:line-through}
"""


def _page(title: str, body: str) -> Response:
    return Response.html(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)} · Calendar sandbox</title><style>{STYLE}</style></head><body>"
        "<header><a href='/_sandbox/'>Calendar sandbox</a> — local Google Calendar and "
        "Microsoft Graph</header>"
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def calendar_path(account: Account, calendar: Calendar) -> str:
    return f"/_sandbox/calendars/{quote(account.email, safe='')}/{quote(calendar.id, safe='')}/"


def event_path(account: Account, calendar: Calendar, event: Event) -> str:
    # Every Graph event of a listing has one (webLink): an id quote() would leave as it is
    # is not quoted, the account's and calendar's are quoted once.
    event_id = event.id if _UNRESERVED.fullmatch(event.id) else quote(event.id, safe="")
    return f"/_sandbox/events/{_quoted(account.email)}/{_quoted(calendar.id)}/{event_id}"


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+")


@functools.lru_cache(maxsize=256)
def _quoted(text: str) -> str:
    return quote(text, safe="")


def _when(event: Event) -> str:
    if event.all_day:
        last = event.end - timedelta(days=1)  # type: ignore[operator]
        return f"{event.start:%Y-%m-%d}" + ("" if last == event.start else f" → {last:%Y-%m-%d}")
    zone = zoneinfo.ZoneInfo(event.time_zone)
    start = event.start.astimezone(zone)  # type: ignore[union-attr]
    end = event.end.astimezone(zone)  # type: ignore[union-attr]
    return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} {escape(event.time_zone)}"


def _html_error(error: HTTPError) -> Response:
    response = _page(f"Error {error.status}", f"<p>{escape(error.message)}</p>")
    response.status = error.status
    return response


class Pages:
    """The pages under /_sandbox/, for a person with a browser."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.router = router = Router(errors=_html_error)
        router.route("GET", r"/_sandbox/?", "sandbox.page")(self.index)
        router.route("POST", r"/_sandbox/faults", "sandbox.page.faults")(self.add_fault)
        router.route("POST", r"/_sandbox/faults/clear", "sandbox.page.faults")(self.clear_faults)
        router.route("POST", r"/_sandbox/counters/reset", "sandbox.page.counters")(
            self.reset_counters
        )
        router.route(
            "POST",
            r"/_sandbox/accounts/(?P<email>[^/]+)/(?P<action>revoke|expire-tokens|invalidate-sync)",
            "sandbox.page.account",
        )(self.account_action)
        router.route(
            "GET", r"/_sandbox/calendars/(?P<email>[^/]+)/(?P<calendar>[^/]+)/", "sandbox.page"
        )(self.calendar_page)
        router.route(
            "POST",
            r"/_sandbox/calendars/(?P<email>[^/]+)/(?P<calendar>[^/]+)/",
            "sandbox.page.edit",
        )(self.create_event)
        router.route(
            "GET",
            r"/_sandbox/events/(?P<email>[^/]+)/(?P<calendar>[^/]+)/(?P<event>[^/]+)",
            "sandbox.page",
        )(self.event_page)
        router.route(
            "POST",
            r"/_sandbox/events/(?P<email>[^/]+)/(?P<calendar>[^/]+)/(?P<event>[^/]+)",
            "sandbox.page.edit",
        )(self.update_event)
        router.route(
            "POST",
            r"/_sandbox/events/(?P<email>[^/]+)/(?P<calendar>[^/]+)/(?P<event>[^/]+)/delete",
            "sandbox.page.edit",
        )(self.delete_event)
        router.route(
            "POST",
            r"/_sandbox/events/(?P<email>[^/]+)/(?P<calendar>[^/]+)/(?P<event>[^/]+)/invitation",
            "sandbox.page.edit",
        )(self.update_invitation)

    def locate(self, request: Request) -> tuple[Account, Calendar]:
        account = self.store.account(unquote(request.params["email"]))
        calendar = account.calendars.get(unquote(request.params["calendar"])) if account else None
        if account is None or calendar is None:
            raise HTTPError(404, "notFound", "No such account or calendar.")
        return account, calendar

    def locate_event(self, request: Request) -> tuple[Account, Calendar, Event]:
        account, calendar = self.locate(request)
        event = calendar.events.get(unquote(request.params["event"]))
        if event is None:
            raise HTTPError(404, "notFound", "No such event.")
        return account, calendar, event

    def index(self, request: Request) -> Response:
        rows = []
        for account in self.store.accounts.values():
            calendars = "".join(
                f"<li><a href='{calendar_path(account, c)}'>{escape(c.name)}</a>"
                f"{' (primary)' if c.primary else ''}{'' if c.can_edit else ' — read-only'}: "
                f"{sum(not e.deleted for e in c.events.values())} entries</li>"
                for c in account.calendars.values()
            )
            email = quote(account.email, safe="")
            actions = "".join(
                f"<form method='post' action='/_sandbox/accounts/{email}/{action}' "
                f"style='display:inline'><button>{label}</button></form> "
                for action, label in [
                    ("revoke", "Revoke grants"),
                    ("expire-tokens", "Expire access tokens"),
                    ("invalidate-sync", "Invalidate sync tokens"),
                ]
            )
            rows.append(
                f"<section class='card'><h2>{escape(account.name)} "
                f"<span class='muted'>&lt;{escape(account.email)}&gt; · "
                f"{'Google' if account.provider == GOOGLE else 'Microsoft'}</span></h2>"
                f"<ul>{calendars}</ul>{actions}</section>"
            )
        kinds = "".join(
            f"<option value='{k}'>{k}: {escape(v)}</option>" for k, v in FAULT_KINDS.items()
        )
        faults = "".join(
            f"<tr><td>{escape(f.kind)}</td><td>{escape(f.endpoint)}</td><td>{escape(f.account)}"
            f"</td><td>{f.hits}/{f.times or '∞'}</td></tr>"
            for f in self.sandbox.faults
        )
        counters = "".join(
            f"<tr><td>{escape(name)}</td><td>{count}</td></tr>"
            for name, count in sorted(self.sandbox.counters.items())
        )
        body = (
            "".join(rows)
            + "<section class='card'><h2>Faults</h2>"
            + (
                "<table><tr><th>Kind</th><th>Endpoint</th><th>Account</th><th>Hits</th></tr>"
                f"{faults}</table>"
                if faults
                else "<p class='muted'>No fault rule.</p>"
            )
            + "<form method='post' action='/_sandbox/faults'>"
            f"<label for='kind'>Kind</label><select id='kind' name='kind'>{kinds}</select>"
            "<label for='endpoint'>Endpoint (pattern, e.g. google.events.* or graph.delta)</label>"
            "<input id='endpoint' name='endpoint' value='*'>"
            "<label for='account'>Account (pattern)</label><input id='account' name='account' "
            "value='*'><label for='times'>Times (0 = until cleared)</label>"
            "<input id='times' name='times' type='number' min='0' value='1'>"
            "<label for='retry_after'>Retry-After (s)</label><input id='retry_after' "
            "name='retry_after' type='number' min='0' value='1'>"
            "<label for='delay'>Delay for 'slow' (s)</label><input id='delay' name='delay' "
            "type='number' min='0' step='0.1' value='5'>"
            "<p><button>Add fault</button></p></form>"
            "<form method='post' action='/_sandbox/faults/clear'><button>Clear faults</button>"
            "</form></section><section class='card'><h2>Requests per endpoint</h2>"
            + (f"<table>{counters}</table>" if counters else "<p class='muted'>None yet.</p>")
            + "<form method='post' action='/_sandbox/counters/reset'><button>Reset</button></form>"
            "</section>"
        )
        return _page("Accounts", body)

    def add_fault(self, request: Request) -> Response:
        form = request.form()
        try:
            self.sandbox.add_fault(
                form.get("kind", ""),
                endpoint=form.get("endpoint") or "*",
                account=form.get("account") or "*",
                times=int(form.get("times") or 1),
                retry_after=int(form["retry_after"]) if form.get("retry_after") else None,
                delay=float(form.get("delay") or 5),
            )
        except ValueError as error:
            raise HTTPError(400, "badRequest", str(error)) from error
        return Response.redirect("/_sandbox/", 303)

    def clear_faults(self, request: Request) -> Response:
        self.sandbox.clear_faults()
        return Response.redirect("/_sandbox/", 303)

    def reset_counters(self, request: Request) -> Response:
        self.sandbox.reset_counters()
        return Response.redirect("/_sandbox/", 303)

    def account_action(self, request: Request) -> Response:
        account = self.store.account(unquote(request.params["email"]))
        if account is None:
            raise HTTPError(404, "notFound", "No such account.")
        provider = self.sandbox.provider_for(account)
        {
            "revoke": provider.revoke_account,
            "expire-tokens": provider.expire_access_tokens,
            "invalidate-sync": self.store.invalidate_sync_state,
        }[request.params["action"]](account)
        return Response.redirect("/_sandbox/", 303)

    def calendar_page(self, request: Request) -> Response:
        account, calendar = self.locate(request)
        query = (request.arg("q") or "").strip().lower()
        show_deleted = request.arg("deleted") == "1"
        with self.store.lock:
            events = [
                e
                for e in calendar.events.values()
                if not e.is_master
                and (show_deleted or not e.deleted)
                and (not query or query in e.title.lower())
            ]
        events.sort(key=lambda e: (e.start_utc(), e.id))
        try:
            page = max(1, int(request.arg("page") or 1))
        except ValueError:
            page = 1
        shown = events[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        rows = "".join(
            f"<tr class='{'cancelled' if e.status == 'cancelled' else ''}'><td>{_when(e)}</td>"
            f"<td><a href='{event_path(account, calendar, e)}'>{escape(e.title) or '(untitled)'}"
            f"</a></td><td>{escape(e.status)}{' · deleted' if e.deleted else ''}"
            f"{' · occurrence' if e.series_id else ''}"
            f"{' · ' + escape(e.event_type) if e.event_type != 'default' else ''}"
            f"{' · exported' if e.private_properties else ''}</td></tr>"
            for e in shown
        )
        base = calendar_path(account, calendar)
        nav = []
        if page > 1:
            nav.append(f"<a href='{base}?page={page - 1}&q={quote(query)}'>← Previous</a>")
        if page * PAGE_SIZE < len(events):
            nav.append(f"<a href='{base}?page={page + 1}&q={quote(query)}'>Next →</a>")
        zone = escape(calendar.time_zone)
        body = (
            f"<p class='muted'>{escape(account.email)} · {len(events)} entries · "
            f"times in the event's own zone</p>"
            f"<form method='get' action='{base}'><label for='q'>Title contains</label>"
            f"<input id='q' name='q' value='{escape(query)}'> <label><input type='checkbox' "
            f"name='deleted' value='1'{' checked' if show_deleted else ''}> Show deleted</label>"
            "<button>Filter</button></form>"
            f"<table><tr><th>When</th><th>Title</th><th>State</th></tr>{rows}</table>"
            f"<p>{' · '.join(nav)}</p>"
        )
        if calendar.can_edit:
            body += (
                f"<section class='card'><h2>New event</h2><form method='post' action='{base}'>"
                "<label for='title'>Title</label><input id='title' name='title' required>"
                f"<label for='start'>Start ({zone})</label>"
                "<input id='start' name='start' type='datetime-local' required>"
                "<label for='minutes'>Duration (minutes)</label>"
                "<input id='minutes' name='minutes' type='number' min='1' value='60'>"
                "<label for='location'>Location</label><input id='location' name='location'>"
                "<label><input type='checkbox' name='all_day' value='1'> All day</label>"
                "<label for='weeks'>Weeks (more than 1: a weekly series)</label>"
                "<input id='weeks' name='weeks' type='number' min='1' max='104' value='1'>"
                "<p><button>Create</button></p></form></section>"
            )
        return _page(calendar.name, body)

    def create_event(self, request: Request) -> Response:
        account, calendar = self.locate(request)
        if not calendar.can_edit:
            raise HTTPError(403, "forbidden", "This calendar is read-only.")
        form = request.form()
        start = _parse_local(form.get("start", ""), calendar.time_zone)
        minutes = int(form.get("minutes") or 60)
        weeks = min(max(int(form.get("weeks") or 1), 1), 104)
        new_id = self._new_id(account)
        event = Event(
            id=new_id,
            calendar_id=calendar.id,
            ical_uid=f"{new_id}@sandbox.test",
            title=form.get("title", "").strip() or "(untitled)",
            start=start,
            end=start + timedelta(minutes=max(1, minutes)),
            time_zone=calendar.time_zone,
            location=form.get("location", "").strip(),
        )
        if form.get("all_day"):
            event.start, event.end = start.date(), start.date() + timedelta(days=1)
        if weeks > 1:  # a series: its master, and its occurrences as the providers list them
            event.recurrence = [f"RRULE:FREQ=WEEKLY;COUNT={weeks}"]
        self.store.save(account, calendar, event)
        for occurrence in expand_series(event) if weeks > 1 else []:
            if account.provider != GOOGLE:
                occurrence.id = new_graph_id()
            self.store.save(account, calendar, occurrence)
        return Response.redirect(event_path(account, calendar, event), 303)

    @staticmethod
    def _new_id(account: Account) -> str:
        return new_google_id() if account.provider == GOOGLE else new_graph_id()

    def event_page(self, request: Request) -> Response:
        account, calendar, event = self.locate_event(request)
        facts = [
            ("When", _when(event)),
            ("Status", escape(event.status) + (" (deleted)" if event.deleted else "")),
            ("Location", escape(event.location)),
            ("Online", escape(event.online_url)),
            ("Description", f"<pre>{escape(event.description)}</pre>"),
            ("Id", f"<code>{escape(event.id)}</code>"),
            ("iCalUID", f"<code>{escape(event.ical_uid)}</code>"),
            ("Series", f"<code>{escape(event.series_id)}</code>" if event.series_id else ""),
            ("Type", escape(event.event_type)),
            (
                "Organised by",
                escape(event.organizer) + f" (answer: {escape(event.response)})"
                if event.organizer
                else "",
            ),
            ("Shows as", "free" if event.free else ""),
            ("Private properties", escape(repr(event.private_properties))),
            ("Changed", f"{event.updated:%Y-%m-%d %H:%M:%S} UTC (seq {event.seq})"),
        ]
        rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts if v)
        body = (
            f"<p><a href='{calendar_path(account, calendar)}'>← {escape(calendar.name)}</a></p>"
            f"<table>{rows}</table>"
        )
        if calendar.can_edit and not event.deleted and not event.all_day:
            zone = zoneinfo.ZoneInfo(event.time_zone)
            start = event.start.astimezone(zone)  # type: ignore[union-attr]
            minutes = int((event.end - event.start).total_seconds() // 60)  # type: ignore[operator]
            action = event_path(account, calendar, event)
            body += (
                f"<section class='card'><h2>Edit, as the calendar's owner would</h2>"
                f"<form method='post' action='{action}'>"
                f"<label for='title'>Title</label><input id='title' name='title' "
                f"value='{escape(event.title)}' required>"
                f"<label for='start'>Start ({escape(event.time_zone)})</label>"
                f"<input id='start' name='start' type='datetime-local' "
                f"value='{start:%Y-%m-%dT%H:%M}' required>"
                f"<label for='minutes'>Duration (minutes)</label><input id='minutes' "
                f"name='minutes' type='number' min='1' value='{minutes}'>"
                f"<label for='location'>Location</label><input id='location' name='location' "
                f"value='{escape(event.location)}'><p><button>Save</button></p></form>"
                f"<form method='post' action='{action}/delete'><button>Delete event</button>"
                "</form></section>"
            )
        if not event.deleted:
            options = "".join(
                f"<option value='{r}'{' selected' if r == event.response else ''}>{r}</option>"
                for r in ("needsAction", "accepted", "tentative", "declined")
            )
            free = " checked" if event.free else ""
            body += (
                "<section class='card'><h2>Invitation and busy time</h2>"
                f"<form method='post' action='{event_path(account, calendar, event)}/invitation'>"
                "<label for='organizer'>Organised by (empty: the account itself)</label>"
                f"<input id='organizer' name='organizer' type='email' "
                f"value='{escape(event.organizer)}'>"
                f"<label for='response'>The account's answer</label>"
                f"<select id='response' name='response'>{options}</select>"
                f"<p><input type='checkbox' id='free' name='free' value='1'{free}> "
                "<label for='free'>Shows as free (does not block time)</label></p>"
                "<p><button>Save</button></p></form></section>"
            )
        return _page(event.title or "(untitled)", body)

    def update_invitation(self, request: Request) -> Response:
        """Someone else's meeting and the account's answer to it, or the account's own event;
        busy or free."""
        account, calendar, event = self.locate_event(request)
        if event.deleted:
            raise HTTPError(403, "forbidden", "This event was deleted.")
        form = request.form()
        event.organizer = form.get("organizer", "").strip().lower()
        response = form.get("response", "")
        if event.organizer and response not in {"needsAction", "accepted", "tentative", "declined"}:
            raise HTTPError(400, "invalid", "Choose the account's answer.")
        event.response = response if event.organizer else ""
        event.free = form.get("free") == "1"
        self.store.save(account, calendar, event)
        return Response.redirect(event_path(account, calendar, event), 303)

    def update_event(self, request: Request) -> Response:
        account, calendar, event = self.locate_event(request)
        if not calendar.can_edit or event.deleted:
            raise HTTPError(403, "forbidden", "This event cannot be changed.")
        form = request.form()
        start = _parse_local(form.get("start", ""), event.time_zone)
        event.title = form.get("title", "").strip() or event.title
        event.start = start
        event.end = start + timedelta(minutes=max(1, int(form.get("minutes") or 60)))
        event.location = form.get("location", "").strip()
        if event.series_id:
            event.is_exception = True
        self.store.save(account, calendar, event)
        return Response.redirect(event_path(account, calendar, event), 303)

    def delete_event(self, request: Request) -> Response:
        account, calendar, event = self.locate_event(request)
        if not calendar.can_edit:
            raise HTTPError(403, "forbidden", "This calendar is read-only.")
        if event.series_id:
            event.is_exception = True
        self.store.delete(account, calendar, event)
        return Response.redirect(calendar_path(account, calendar), 303)


def install(sandbox: Sandbox) -> Router:
    return Pages(sandbox).router


def _parse_local(value: str, zone: str) -> datetime:
    try:
        naive = datetime.fromisoformat(value)
    except ValueError as error:
        raise HTTPError(400, "badRequest", "Start must be a date and time.") from error
    return naive.replace(tzinfo=zoneinfo.ZoneInfo(zone))
