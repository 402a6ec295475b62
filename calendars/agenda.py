"""What the learner's calendar shows: their formations and imported events over a range of days,
in their time zone. The calendar page and the JSON API both read it from here.

One query per source whatever the number of items; every query is scoped to the learner.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F, Func, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS, WEEKDAYS
from django.utils.formats import date_format
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from accounts.models import Profile
from calendars.models import CalendarEvent, SyncRun
from calendars.providers.names import PROVIDERS
from formations.models import Formation

FORMATION = "formation"
View = Literal["month", "week", "day", "agenda"]
VIEWS: tuple[View, ...] = ("month", "week", "day", "agenda")
AGENDA_DAYS = 30
# Dates outside these bounds are refused: their neighbours and UTC instants must stay valid.
MIN_DAY = date(1900, 1, 1)
MAX_DAY = date(2999, 12, 31)
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_KEY = re.compile(r"(formation|event)-([1-9][0-9]{0,17})")
# An all-day event's stored midnights are in its own zone, up to 26 hours from the learner's;
# the coarse instant filter on them (which the indexes serve) is widened by this much.
_ZONE_SLACK = timedelta(days=2)


@dataclass(frozen=True)
class AgendaItem:
    """A formation or an imported event as the calendar shows it.

    `start` / `end` are in the learner's zone; `first_day` / `last_day` are the days (inclusive)
    it covers there: for all-day items, the provider's dates, which no zone shifts.
    """

    key: str  # "formation-<pk>" / "event-<pk>"
    source: str  # "formation" or a provider's name
    title: str
    start: datetime
    end: datetime
    all_day: bool
    first_day: date
    last_day: date
    location: str = ""
    url: str = ""  # a formation's page (a path), an event's page at its provider
    calendar: str | None = None
    external_id: str | None = None
    cancelled: bool = False
    # An invitation: the learner's answer (declined ones are never listed); "" otherwise.
    response: str = ""
    busy: bool = True  # blocks the learner's time (false: shown as free)
    # The items of the page it clashes with (a formation's busy events, an event's
    # formations), not dismissed by the learner: set by calendars.layout.mark_conflicts.
    conflicts: tuple[AgendaItem, ...] = ()

    @property
    def pk(self) -> int:
        return int(self.key.rpartition("-")[2])

    @property
    def is_formation(self) -> bool:
        return self.source == FORMATION

    @property
    def conflict_titles(self) -> str:
        """What it clashes with, for screen readers: "Dentiste, Réunion"."""
        return ", ".join(other.title or _("(sans titre)") for other in self.conflicts)

    @property
    def tentative(self) -> bool:
        """Not a firm yes: answered "maybe", or not answered yet."""
        return self.response in {"tentative", "needs_action"}

    @property
    def spans_days(self) -> bool:
        return self.all_day or self.last_day > self.first_day

    @property
    def end_day(self) -> date:
        """The day after the last one: all-day ends are exclusive, as providers give them."""
        return self.last_day + timedelta(days=1)

    @property
    def full_when(self) -> str:
        """Its days and times in words, for screen readers and its details."""
        return time_range(self)

    @property
    def source_label(self) -> str:
        return label_of_source(self.source)


@dataclass(frozen=True)
class Source:
    name: str
    label: str


def sources() -> list[Source]:
    """Every kind of item, in the legend's order: formations, then the registry's providers."""
    return [Source(name, label_of_source(name)) for name in (FORMATION, *PROVIDERS)]


def label_of_source(name: str) -> str:
    """What a kind of item is called: "Formation", or its provider's title."""
    if name == FORMATION:
        return _("Formation")
    provider = PROVIDERS.get(name)
    return provider.title if provider else name


def learner_zone(user: Any) -> tzinfo:
    """The learner's display zone, as the preferences middleware activates it for their pages
    (API calls made with a token have no session, hence no activated zone)."""
    try:
        name = user.profile.time_zone  # no query when the profile came with the user
    except Profile.DoesNotExist:
        name = None
    try:
        return zoneinfo.ZoneInfo(name or settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def parse_day(value: str | None) -> date | None:
    """A YYYY-MM-DD date within [MIN_DAY, MAX_DAY], or None."""
    if not value or not _ISO_DAY.fullmatch(value):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if MIN_DAY <= day <= MAX_DAY else None


def day_start(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def _link(url: str) -> str:
    # Providers' data is not trusted: a "javascript:" link would run in our page when clicked.
    return url if url.lower().startswith(("https://", "http://")) else ""


def all_day_dates(start: datetime, end: datetime, zone: tzinfo) -> tuple[date, date]:
    """An all-day event's dates (the end exclusive, as providers give it) from its stored
    midnights, which are in the event's own zone: the nearest midnights in `zone` (two zones
    are less than 12 hours apart, but for a few islands of the Pacific)."""
    half = timedelta(hours=12)
    first = (timezone.localtime(start, zone) + half).date()
    return first, max((timezone.localtime(end, zone) + half).date(), first + timedelta(days=1))


def _days_of(start: datetime, end: datetime, zone: tzinfo) -> tuple[date, date]:
    first = timezone.localtime(start, zone).date()
    # An end at midnight does not cover the day that begins then.
    last = timezone.localtime(max(end, start + timedelta.resolution) - timedelta.resolution, zone)
    return first, last.date()


def agenda_items(
    *, user: Any, start: date, end: date, zone: tzinfo | None = None, shown_only: bool = False
) -> list[AgendaItem]:
    """The learner's formations (those they are enrolled in) and imported events (of the
    calendars they import, not cancelled) that overlap the days [start, end) in `zone` (by
    default the active one), in display order: by first day, items spanning days first, then
    by start time and title. With `shown_only`, the events of the calendars the learner hid
    on the calendar page are left out.

    Two queries, whatever the number of items.
    """
    zone = zone or timezone.get_current_timezone()
    since, until = day_start(start, zone), day_start(end, zone)
    events = _events(user, start, end, zone, shown_only)
    items = [*_formations(user, since, until, zone), *events]
    items.sort(key=lambda i: (i.first_day, not i.spans_days, i.start, i.title.casefold(), i.key))
    return items


def _formation_rows(user: Any) -> Any:
    """The learner's formations, as dicts."""
    return _formation_values().for_learner(user)


@functools.cache
def _formation_values() -> Any:
    """Built once (never evaluated itself: each call filters a copy), as `_event_values`."""
    return Formation.objects.values("pk", "title", "start", "end", "location", "status")


def _formations(user: Any, since: datetime, until: datetime, zone: tzinfo) -> list[AgendaItem]:
    rows = _formation_rows(user).filter(start__lt=until, end__gt=since)
    path = _formation_path()
    return [_formation_item(row, zone, path) for row in rows]


def _formation_path() -> str:
    """A formation's page without its number, for formations.urls' "<int:pk>/": what
    get_absolute_url gives, from one `reverse()` a call rather than one a formation."""
    return reverse("formations:detail", args=[1]).removesuffix("1/")


def _formation_item(row: dict[str, Any], zone: tzinfo, path: str) -> AgendaItem:
    first, last = _days_of(row["start"], row["end"], zone)
    return AgendaItem(
        key=f"formation-{row['pk']}",
        source=FORMATION,
        title=row["title"],
        start=timezone.localtime(row["start"], zone),
        end=timezone.localtime(row["end"], zone),
        all_day=False,
        first_day=first,
        last_day=last,
        location=row["location"],
        url=f"{path}{row['pk']}/",
        cancelled=row["status"] == Formation.Status.CANCELLED,
    )


def _event_rows(user: Any) -> Any:
    """The events the calendar may show the learner: of the calendars they import (shown on
    the page or hidden there), neither cancelled nor declined; as dicts."""
    return _event_values().filter(calendar__integration__user=user)


@functools.cache
def _event_values() -> Any:
    """`_event_rows` for every learner, built once (never evaluated itself: each call filters
    a copy): building it took as long as running it."""
    return (
        CalendarEvent.objects.filter(
            calendar__integration__import_enabled=True, calendar__import_enabled=True
        )
        .exclude(status=CalendarEvent.Status.CANCELLED)
        .exclude(response=CalendarEvent.Response.DECLINED)  # the learner said no
        # values(): no model instances, and never the integration's encrypted credentials.
        .values(
            "pk",
            "external_id",
            "title",
            "location",
            "start",
            "end",
            "all_day",
            "start_date",
            "end_date",
            "html_link",
            "response",
            "busy",
            "calendar__name",
            "calendar__integration__provider",
        )
    )


def _events(user: Any, start: date, end: date, zone: tzinfo, shown_only: bool) -> list[AgendaItem]:
    since, until = day_start(start, zone), day_start(end, zone)
    timed = Q(all_day=False, start__lt=until, end__gt=since)
    # All-day events are the provider's dates, shown on those days in every zone.
    all_day = Q(all_day=True, start_date__lt=end, end_date__gt=start)
    shown = {"calendar__shown": True} if shown_only else {}
    rows = _event_rows(user).filter(
        timed | all_day, **shown, start__lt=until + _ZONE_SLACK, end__gt=since - _ZONE_SLACK
    )
    return [_event_item(row, zone) for row in rows]


def _event_item(row: dict[str, Any], zone: tzinfo) -> AgendaItem:
    if row["all_day"]:
        first = row["start_date"]
        last = max(first, row["end_date"] - timedelta(days=1))
    else:
        first, last = _days_of(row["start"], row["end"], zone)
    return AgendaItem(
        key=f"event-{row['pk']}",
        source=row["calendar__integration__provider"],
        title=row["title"],
        start=timezone.localtime(row["start"], zone),
        end=timezone.localtime(row["end"], zone),
        all_day=row["all_day"],
        first_day=first,
        last_day=last,
        location=row["location"],
        url=_link(row["html_link"]),
        calendar=row["calendar__name"],
        external_id=row["external_id"],
        response=row["response"],
        busy=row["busy"],
    )


def agenda_item(*, user: Any, key: str, zone: tzinfo | None = None) -> AgendaItem | None:
    """One item of the learner's calendar by its key ("formation-<pk>", "event-<pk>"), as the
    calendar shows it, or None: a bad key, someone else's item, or one the calendar never
    shows (a calendar not imported, a cancelled or declined event). An event of a calendar
    hidden on the page is still the learner's: found. One query."""
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    kind, pk = match.group(1), int(match.group(2))
    zone = zone or timezone.get_current_timezone()
    if kind == FORMATION:
        row = _formation_rows(user).filter(pk=pk).first()
        return _formation_item(row, zone, _formation_path()) if row else None
    row = _event_rows(user).filter(pk=pk).first()
    return _event_item(row, zone) if row else None


# --- the page's periods and days --------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The days a view shows, [start, end), and where its navigation leads."""

    view: View
    day: date  # the date asked for
    start: date
    end: date
    previous: date
    next: date

    @property
    def last(self) -> date:
        return self.end - timedelta(days=1)


def period_of(view: View, day: date) -> Period:
    if view == "day":
        one = timedelta(days=1)
        return Period(view, day, day, day + one, day - one, day + one)
    if view in ("week", "agenda"):
        length = timedelta(days=7 if view == "week" else AGENDA_DAYS)
        start = day - timedelta(days=day.weekday()) if view == "week" else day
        return Period(view, day, start, start + length, start - length, start + length)
    # The month, in whole ISO weeks: from the Monday on or before the 1st to the Sunday on or
    # after its last day.
    first = day.replace(day=1)
    following = (first + timedelta(days=31)).replace(day=1)
    grid_start = first - timedelta(days=first.weekday())
    grid_end = following + timedelta(days=(7 - following.weekday()) % 7)
    previous = (first - timedelta(days=1)).replace(day=1)
    return Period(view, day, grid_start, grid_end, previous, following)


@dataclass(frozen=True)
class Entry:
    """An item on one of the days it covers."""

    item: AgendaItem
    day: date

    @property
    def when(self) -> str:
        """What to say of its time on that day (worked out for the entries shown only: a
        month holds more than it shows)."""
        return _when(self.item, self.day)


@dataclass
class Day:
    date: date
    entries: list[Entry] = field(default_factory=list)

    @property
    def iso(self) -> str:
        return self.date.isoformat()

    @property
    def name(self) -> str:
        """ "Mardi 1 décembre" in the active language: what `date:"l j F"|capfirst` writes,
        without the filter's cost (the month view names 42 days)."""
        day = self.date
        return capfirst(f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month]}")

    @property
    def spanning(self) -> list[Entry]:
        """The week view's all-day row: all-day items and those running over several days."""
        return [e for e in self.entries if e.item.spans_days]

    @property
    def timed(self) -> list[Entry]:
        return [e for e in self.entries if not e.item.spans_days]


def _hhmm(value: datetime) -> str:
    # time_format(value, "H:i") says the same, at many times the cost.
    return f"{value:%H:%M}"


def _when(item: AgendaItem, day: date) -> str:
    if item.all_day:
        return _("Toute la journée")
    starts, ends = item.first_day == day, item.last_day == day
    if starts and ends:
        return f"{_hhmm(item.start)}–{_hhmm(item.end)}"
    if starts:
        return _("à partir de %(time)s") % {"time": _hhmm(item.start)}
    if ends:
        return _("jusqu'à %(time)s") % {"time": _hhmm(item.end)}
    return _("Toute la journée")


def time_range(item: AgendaItem) -> str:
    """When an item is, in full words (what a screen reader says, what its details show):
    "jeudi 8 avril 2027, de 09:30 à 10:30"."""

    def day(value: date) -> str:
        return date_format(value, "l j F Y")

    if item.all_day and item.first_day == item.last_day:
        return _("%(day)s, toute la journée") % {"day": day(item.first_day)}
    if item.all_day:
        return _("du %(first)s au %(last)s, toute la journée") % {
            "first": day(item.first_day),
            "last": day(item.last_day),
        }
    times = {"start": _hhmm(item.start), "end": _hhmm(item.end)}
    if item.first_day == item.last_day:
        return _("%(day)s, de %(start)s à %(end)s") % {"day": day(item.first_day), **times}
    return _("du %(first)s à %(start)s au %(last)s à %(end)s") % {
        "first": day(item.first_day),
        "last": day(item.last_day),
        **times,
    }


def days_of(items: Iterable[AgendaItem], start: date, end: date) -> list[Day]:
    """The days [start, end), each with the items covering it, in the items' order."""
    days = [Day(start + timedelta(days=n)) for n in range((end - start).days)]
    for item in items:
        first = max(item.first_day, start)
        last = min(item.last_day, end - timedelta(days=1))
        for n in range((first - start).days, (last - start).days + 1):
            days[n].entries.append(Entry(item, days[n].date))
    for day in days:
        day.entries.sort(key=lambda e: not e.item.spans_days)  # stable: keeps the time order
    return days


def _single(queryset: Any, function: str, field: str) -> Subquery:
    """`function` (COUNT, MAX) of `field` over the whole of `queryset`, as a subquery. A Func
    rather than Count() or Max(): those would group the rows by their key."""
    return Subquery(
        queryset.order_by().annotate(value=Func(F(field), function=function)).values("value")
    )


def calendar_stamp(user: Any) -> str:
    """Changes whenever the learner's imported events or formations change (rows added,
    changed or deleted) or a sync of theirs starts or ends (the page says one is under way).
    One query: the page's script asks for it every few seconds."""
    parts = _stamp_parts().filter(pk=user.pk).get()
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


@functools.cache
def _stamp_parts() -> Any:
    """The stamp's query for any learner, built once (never evaluated itself: each call filters
    a copy): building its six subqueries took longer than running them."""
    user = OuterRef("pk")
    events = CalendarEvent.objects.filter(calendar__integration__user=user)
    runs = SyncRun.objects.filter(integration__user=user)
    formations = Formation.objects.filter(enrollments__learner=user)
    return get_user_model().objects.values_list(
        _single(events, "COUNT", "pk"),
        _single(events, "MAX", "updated_at"),
        _single(runs, "MAX", "finished_at"),
        _single(runs, "MAX", "started_at"),
        _single(formations, "COUNT", "pk"),
        _single(formations, "MAX", "updated_at"),
    )
