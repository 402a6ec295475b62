"""When enrolled learners are busy, from what their calendars imported: the learner's own
conflicts with their formations, and, for staff, how many learners a time suits.

No provider is asked: busy time is what the import keeps (`CalendarEvent`, not cancelled,
not declined, not marked free, of calendars the learner imports). Staff never get an event's
title, place or description from here, only learners' names and counts; a learner who turned
off sharing (`Profile.share_busy`) or has no calendar imported counts as unknown.

Every function makes a fixed number of queries, whatever the number of learners and events.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Q, QuerySet

from calendars.models import Calendar, CalendarEvent, CalendarIntegration, ConflictDismissal
from formations.models import Enrollment, Formation

# Suggested slots: working hours in the formation's zone, Monday to Friday, every half hour.
WORK_HOURS = (time(9), time(18))
SLOT_STEP = timedelta(minutes=30)
SLOTS_SHOWN = 10
# Past this many separate formation spans, a learner's events are fetched over one span
# covering them all (SQLite refuses expressions deeper than 1,000).
MAX_SPANS = 50


def busy_events(user_ids: Iterable[int] | QuerySet[Any]) -> QuerySet[CalendarEvent]:
    """The imported events that take the time of these learners."""
    events = CalendarEvent.objects.filter(
        calendar__integration__user_id__in=user_ids,
        calendar__integration__import_enabled=True,
        calendar__import_enabled=True,
        busy=True,
    )
    # Two excludes, not one of an OR: the SQL then says what the partial index on busy events
    # says (CalendarEvent.Meta), which SQLite needs to see it applies.
    return events.exclude(status=CalendarEvent.Status.CANCELLED).exclude(
        response=CalendarEvent.Response.DECLINED
    )


def _overlapping(start: datetime, end: datetime) -> Q:
    return Q(start__lt=end, end__gt=start)


# --- the learner's own conflicts -------------------------------------------------------------


@dataclass(frozen=True)
class Conflict:
    """One of the learner's busy events over a formation of theirs."""

    formation_id: int
    event_id: int
    title: str  # the learner's own event: shown to them, never to staff
    provider: str
    start: datetime
    end: datetime
    all_day: bool
    dismissed: bool  # "je m'en occupe", while neither moved

    @property
    def key(self) -> str:
        return f"event-{self.event_id}"


def conflict_fingerprint(
    formation_start: datetime, formation_end: datetime, start: datetime, end: datetime
) -> str:
    """Changes when the formation or the event moves: a dismissal holds only as long as it.
    Of the instants, not of how they are written: the same times in another zone (a page's
    local times, the database's UTC) give the same fingerprint."""
    instants = (formation_start, formation_end, start, end)
    text = "|".join(v.astimezone(UTC).isoformat() for v in instants)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def dismissed_conflicts(*, user: Any, formation_ids: Iterable[int]) -> set[tuple[int, int, str]]:
    """The learner's dismissals for these formations, as (formation id, event id,
    fingerprint): a conflict is dismissed when its own fingerprint is among them. One query,
    none without formations."""
    ids = sorted(set(formation_ids))
    if not ids:
        return set()
    return set(
        ConflictDismissal.objects.filter(user=user, formation__in=ids).values_list(
            "formation_id", "event_id", "fingerprint"
        )
    )


def dismissed_conflicts_between(
    *, user: Any, start: datetime, end: datetime
) -> set[tuple[int, int, str]]:
    """As dismissed_conflicts, for the formations over [start, end): what a calendar page
    needs, in one query whatever it shows (none, or any number of conflicts)."""
    return set(
        ConflictDismissal.objects.filter(
            user=user, formation__start__lt=end, formation__end__gt=start
        ).values_list("formation_id", "event_id", "fingerprint")
    )


def _merged[T: (datetime, float)](spans: Iterable[tuple[T, T]]) -> list[list[T]]:
    """The spans sorted, those that overlap or touch made one."""
    merged: list[list[T]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _around(spans: Iterable[tuple[datetime, datetime]]) -> Q:
    """A filter for events overlapping any of the spans: the spans merged where they touch,
    one bounding span past MAX_SPANS (the database's expression depth is limited; events
    outside the spans are then left out in Python)."""
    merged = _merged(spans)
    if len(merged) > MAX_SPANS:
        merged = [[merged[0][0], max(end for _, end in merged)]]
    around = Q()
    for start, end in merged:
        around |= _overlapping(start, end)
    return around


def learner_conflicts(*, user: Any, formations: Sequence[Formation]) -> dict[int, list[Conflict]]:
    """The learner's busy events overlapping each of `formations` (theirs, scheduled), by
    formation id, in time order; dismissed ones are included and say so. Two queries."""
    scheduled = [f for f in formations if f.status == Formation.Status.SCHEDULED]
    if not scheduled:
        return {}
    rows = list(
        busy_events([user.pk])
        .filter(_around((f.start, f.end) for f in scheduled))
        .order_by("start", "pk")
        .values_list("pk", "title", "start", "end", "all_day", "calendar__integration__provider")
    )
    if not rows:
        return {}
    dismissed = dismissed_conflicts(user=user, formation_ids=[f.pk for f in scheduled])
    conflicts: dict[int, list[Conflict]] = {}
    for formation in scheduled:
        for pk, title, start, end, all_day, provider in rows:
            if start < formation.end and end > formation.start:
                fingerprint = conflict_fingerprint(formation.start, formation.end, start, end)
                conflicts.setdefault(formation.pk, []).append(
                    Conflict(
                        formation_id=formation.pk,
                        event_id=pk,
                        title=title,
                        provider=provider,
                        start=start,
                        end=end,
                        all_day=all_day,
                        dismissed=(formation.pk, pk, fingerprint) in dismissed,
                    )
                )
    return conflicts


# --- for staff: who is free ------------------------------------------------------------------


@dataclass(frozen=True)
class Learner:
    pk: int
    name: str


@dataclass(frozen=True)
class Availability:
    """The enrolled learners at a time: busy (names only), free, unknown (no calendar
    imported, or not sharing)."""

    busy: list[Learner]
    free: int
    unknown: int

    @property
    def known(self) -> int:
        return len(self.busy) + self.free


def _enrolled(formation: Formation) -> list[Learner]:
    rows = (
        Enrollment.objects.filter(formation=formation)
        .order_by("learner__last_name", "learner__first_name", "learner__username")
        .values_list("learner_id", "learner__first_name", "learner__last_name", "learner__username")
    )
    return [
        Learner(pk, f"{first} {last}".strip() or username) for pk, first, last, username in rows
    ]


def _learners_of(formation_ids: Iterable[int]) -> QuerySet[Any]:
    """The formations' learners, as a subquery: the database joins it, however many they are
    (a list of ids would run into the limit on a statement's parameters)."""
    return Enrollment.objects.filter(formation_id__in=formation_ids).values("learner_id")


def _known(learner_ids: QuerySet[Any]) -> set[int]:
    """Of these learners, those whose busy time counts: a calendar imported (at least once:
    before its first import ends, an empty calendar says nothing), sharing on. One query."""
    return set(
        Calendar.objects.filter(
            integration__user_id__in=learner_ids,
            integration__import_enabled=True,
            import_enabled=True,
            last_imported_at__isnull=False,
        )
        .exclude(integration__status=CalendarIntegration.Status.NEEDS_RECONNECT)
        .exclude(integration__user__profile__share_busy=False)
        .order_by()
        .values_list("integration__user_id", flat=True)
        .distinct()
    )


def _busy_rows(learner_ids: QuerySet[Any], start: datetime, end: datetime, around: Q) -> Any:
    """(learner, start, end) of the learners' busy events overlapping any of `around`, all
    of which lie within [start, end): that envelope lets the database scan one range of its
    index rather than one per time asked about."""
    return (
        busy_events(learner_ids)
        .filter(_overlapping(start, end))
        .filter(around)
        .order_by()
        .values_list("calendar__integration__user_id", "start", "end")
    )


def formation_availability(
    *, formation: Formation, start: datetime | None = None, end: datetime | None = None
) -> Availability:
    """Who of the formation's learners is busy over [start, end) (by default, its own
    times). Three queries."""
    start, end = start or formation.start, end or formation.end
    learners = _enrolled(formation)
    if not learners:
        return Availability(busy=[], free=0, unknown=0)
    enrolled = _learners_of([formation.pk])
    known = _known(enrolled)
    busy_ids = (
        set(
            busy_events(enrolled)
            .filter(_overlapping(start, end))
            .order_by()
            .values_list("calendar__integration__user_id", flat=True)
            .distinct()
        )
        & known
        if known
        else set()
    )
    return Availability(
        busy=[learner for learner in learners if learner.pk in busy_ids],
        free=len(known - busy_ids),
        unknown=len(learners) - len(known),
    )


def formations_busy_counts(formations: Sequence[Formation]) -> dict[int, int]:
    """For the admin's list: how many enrolled, sharing learners are busy over each
    formation. Three queries for the whole page."""
    ids = [f.pk for f in formations]
    if not ids:
        return {}
    enrolled = list(Enrollment.objects.filter(formation_id__in=ids).values_list(
        "formation_id", "learner_id"
    ))  # fmt: skip
    known = _known(_learners_of(ids)) if enrolled else set()
    busy: dict[int, _BusyTimes] = {}
    if known:
        around = _around((f.start, f.end) for f in formations)
        envelope = (min(f.start for f in formations), max(f.end for f in formations))
        busy = _busy_times(_busy_rows(_learners_of(ids), *envelope, around), known)
    seconds = {f.pk: (f.start.timestamp(), f.end.timestamp()) for f in formations}
    counts = dict.fromkeys(ids, 0)
    for formation_id, learner_id in enrolled:
        if learner_id in busy and busy[learner_id].overlaps(*seconds[formation_id]):
            counts[formation_id] += 1
    return counts


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    free: int
    busy: int
    unknown: int


class _BusyTimes:
    """One learner's busy intervals, merged and sorted, for quick overlap tests. In POSIX
    seconds: comparing datetimes of different zones asks the zones for their offsets each
    time, which made most of the time free_slots took."""

    def __init__(self, intervals: list[tuple[datetime, datetime]]) -> None:
        merged = _merged((s.timestamp(), e.timestamp()) for s, e in intervals)
        self.starts = [s for s, _ in merged]
        self.ends = [e for _, e in merged]

    def overlaps(self, start: float, end: float) -> bool:
        # The first interval ending after `start` is the only one that can overlap.
        i = bisect_right(self.ends, start)
        return i < len(self.starts) and self.starts[i] < end


def _busy_times(
    rows: Iterable[tuple[int, datetime, datetime]], known: set[int]
) -> dict[int, _BusyTimes]:
    """The busy times of the `known` learners among (learner, start, end) rows."""
    intervals: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for user_id, start, end in rows:
        if user_id in known:
            intervals[user_id].append((start, end))
    return {user_id: _BusyTimes(times) for user_id, times in intervals.items()}


def free_slots(
    *,
    formation: Formation,
    since: date,
    until: date,
    now: datetime | None = None,
    limit: int = SLOTS_SHOWN,
) -> tuple[list[Slot], int]:
    """Times of the formation's length, on working days and hours of its zone within
    [since, until) and not before `now`, ranked by how many of its learners are free (then the
    earliest), and how many learners are unknown. Slots overlap when taken every SLOT_STEP:
    each one kept overlaps none ranked before it, so that ten suggestions are ten different
    times rather than the same morning shifted by half an hour. Three queries."""
    zone = formation.tz
    length = formation.end - formation.start
    learners = _enrolled(formation)
    enrolled = _learners_of([formation.pk])
    known = _known(enrolled) if learners else set()
    unknown = len(learners) - len(known)
    first = datetime.combine(since, time.min, tzinfo=zone)
    last = datetime.combine(until, time.min, tzinfo=zone)
    busy = _busy_times(_busy_rows(enrolled, first, last, Q()), known) if known else {}
    times = [busy.get(pk) or _BusyTimes([]) for pk in known]
    candidates = []
    day = since
    while day < until:
        if day.weekday() < 5:
            start = datetime.combine(day, WORK_HOURS[0], tzinfo=zone)
            closing = datetime.combine(day, WORK_HOURS[1], tzinfo=zone)
            while start + length <= closing:
                if now is None or start >= now:
                    seconds = (start.timestamp(), (start + length).timestamp())
                    busy = sum(t.overlaps(*seconds) for t in times)
                    candidates.append(Slot(start, start + length, len(times) - busy, busy, unknown))
                start += SLOT_STEP
        day += timedelta(days=1)
    candidates.sort(key=lambda s: (-s.free, s.start))
    slots: list[Slot] = []
    for slot in candidates:
        if len(slots) == limit:
            break
        if not any(slot.start < kept.end and slot.end > kept.start for kept in slots):
            slots.append(slot)
    return slots, unknown
