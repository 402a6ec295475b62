"""Where the week and day views draw each item: pure functions on AgendaItems, no queries.

Timed items of a single day are blocks in their day's hour column, placed by their wall-clock
time in the learner's zone (10:00 is 10:00 on a 23- or 25-hour day too) and put side by side
when they overlap. Items over several days (all-day ones, and timed ones that cross midnight)
are bars in the all-day row, drawn once across the days they cover, stacked in lanes.

Conflicts are found here too, among the items a page already holds: a formation and one of the
learner's busy events at the same time are both marked, as the formation's page counts them
(calendars.availability), unless the learner dismissed it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from calendars.agenda import AgendaItem
from calendars.availability import conflict_fingerprint

DAY_MINUTES = 24 * 60
# A short event is drawn at least this tall (in minutes of the grid), so that its text and its
# link stay readable and big enough to point at; it takes that room when laying out overlaps.
MIN_MINUTES = 30
SHORT_MINUTES = 50


def wall_minutes(moment: datetime, day: date) -> int:
    """Minutes from `day`'s midnight on the wall clock of `moment`'s zone, within [0, 1440]:
    0 before the day, 1440 after it."""
    if moment.date() < day:
        return 0
    if moment.date() > day:
        return DAY_MINUTES
    return moment.hour * 60 + moment.minute


def _percent(part: float, whole: float = DAY_MINUTES) -> str:
    # Formatted here, not by the template: a localised decimal comma would break the CSS.
    return f"{part * 100 / whole:.4f}".rstrip("0").rstrip(".") + "%"


@dataclass(frozen=True)
class Block:
    """A timed item in its day's column: [top, bottom) in minutes of the grid, and its place
    among the items it overlaps: `column` of `columns`, taking `span` columns."""

    item: AgendaItem
    top: int
    bottom: int
    column: int = 0
    columns: int = 1
    span: int = 1

    @property
    def when(self) -> str:
        return f"{self.item.start:%H:%M}–{self.item.end:%H:%M}"

    @property
    def short(self) -> bool:
        """Too short for its time above its title: drawn on one line."""
        return self.bottom - self.top < SHORT_MINUTES

    @property
    def style(self) -> str:
        return (
            f"--top: {_percent(self.top)}; --height: {_percent(self.bottom - self.top)}; "
            f"--left: {_percent(self.column, self.columns)}; "
            f"--width: {_percent(self.span, self.columns)}"
        )


@dataclass(frozen=True)
class Bar:
    """An item of the all-day row: from the `column`-th day shown, over `span` days, on
    `lane` (0 is the top one); `before` / `after`: it goes on past the days shown."""

    item: AgendaItem
    column: int
    span: int
    lane: int
    before: bool = False
    after: bool = False

    @property
    def when(self) -> str:
        """The start time of a timed item beginning in the days shown; "" otherwise."""
        return "" if self.item.all_day or self.before else f"{self.item.start:%H:%M}"

    @property
    def style(self) -> str:
        return f"--span: {self.span}; --lane: {self.lane}"


@dataclass
class GridDay:
    date: date
    bars: list[Bar] = field(default_factory=list)  # the bars that begin in this column
    blocks: list[Block] = field(default_factory=list)
    now: int | None = None  # the current time's line: its minute, on today only
    covered: bool = False  # under a bar

    @property
    def now_top(self) -> str:
        return _percent(self.now or 0)

    @property
    def empty(self) -> bool:
        return not self.blocks and not self.covered


@dataclass(frozen=True)
class TimeGrid:
    days: list[GridDay]
    lanes: int  # how many lanes the all-day row has (at least one, empty or not)


def _span(item: AgendaItem, day: date) -> tuple[int, int]:
    top, bottom = wall_minutes(item.start, day), wall_minutes(item.end, day)
    # An event ending at its start (or before, on the clock of a day that repeats an hour):
    # drawn at its start, at the least height.
    bottom = max(bottom, top + MIN_MINUTES)
    if bottom > DAY_MINUTES:  # late in the day: raised to keep its height inside the column
        top, bottom = DAY_MINUTES - MIN_MINUTES, DAY_MINUTES
    return top, bottom


def place_blocks(items: Iterable[AgendaItem], day: date) -> list[Block]:
    """The blocks of `day`'s column for items on that day, clipped to it, in reading order
    (by time, then left to right).

    As calendar applications do it: items are grouped in clusters that overlap one another,
    directly or through others; each cluster is split into as many columns as it needs, each
    item taking the first column free at its start, and widening to the right over columns
    that stay free for its whole height. Touching items (one ends when the next starts) do
    not overlap.
    """
    spans = sorted(((*_span(i, day), i) for i in items), key=lambda s: (s[0], -s[1]))
    blocks: list[Block] = []
    cluster: list[tuple[int, int, AgendaItem, int]] = []  # top, bottom, item, column
    ends: list[int] = []  # the bottom of the last block in each of the cluster's columns
    for top, bottom, item in spans:
        if cluster and top >= max(ends):
            blocks += _spread(cluster, len(ends))
            cluster, ends = [], []
        column = next((n for n, end in enumerate(ends) if end <= top), len(ends))
        if column == len(ends):
            ends.append(bottom)
        else:
            ends[column] = bottom
        cluster.append((top, bottom, item, column))
    if cluster:
        blocks += _spread(cluster, len(ends))
    return sorted(blocks, key=lambda b: (b.top, b.column))


def _spread(cluster: Sequence[tuple[int, int, AgendaItem, int]], columns: int) -> list[Block]:
    def free(column: int, top: int, bottom: int) -> bool:
        return all(c != column or b <= top or t >= bottom for t, b, _, c in cluster)

    blocks = []
    for top, bottom, item, column in cluster:
        span = 1
        while column + span < columns and free(column + span, top, bottom):
            span += 1
        blocks.append(Block(item, top, bottom, column, columns, span))
    return blocks


def stack_bars(items: Iterable[AgendaItem], start: date, end: date) -> list[Bar]:
    """The bars of the days [start, end) for items that cover some of them, each on the top
    lane free over all its days: longer bars first where several begin on the same day. In
    reading order: by first day shown, then lane."""
    last = end - timedelta(days=1)
    placed: list[Bar] = []
    lanes: list[int] = []  # the last column taken on each lane
    shown = [i for i in items if i.first_day <= last and i.last_day >= start]

    def order(item: AgendaItem) -> tuple[date, timedelta, datetime, str, str]:
        length = item.last_day - item.first_day
        return max(item.first_day, start), -length, item.start, item.title.casefold(), item.key

    for item in sorted(shown, key=order):
        column = (max(item.first_day, start) - start).days
        span = (min(item.last_day, last) - start).days - column + 1
        lane = next((n for n, taken in enumerate(lanes) if taken < column), len(lanes))
        if lane == len(lanes):
            lanes.append(column + span - 1)
        else:
            lanes[lane] = column + span - 1
        placed.append(Bar(item, column, span, lane, item.first_day < start, item.last_day > last))
    return sorted(placed, key=lambda b: (b.column, b.lane))


def time_grid(
    items: Iterable[AgendaItem], start: date, end: date, now: datetime | None = None
) -> TimeGrid:
    """The week or day view of the days [start, end): bars for items over several days,
    blocks for the others, and the line of `now` (in the learner's zone) on its day."""
    items = list(items)
    days = [GridDay(start + timedelta(days=n)) for n in range((end - start).days)]
    bars = stack_bars([i for i in items if i.spans_days], start, end)
    for bar in bars:
        days[bar.column].bars.append(bar)
        for day in days[bar.column : bar.column + bar.span]:
            day.covered = True
    for day in days:
        day.blocks = place_blocks(
            [i for i in items if not i.spans_days and i.first_day == day.date], day.date
        )
        if now is not None and now.date() == day.date:
            day.now = wall_minutes(now, day.date)
    return TimeGrid(days, max([1] + [b.lane + 1 for b in bars]))


# --- conflicts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Clash:
    """A formation and a busy event of the learner's over the same time."""

    formation: AgendaItem
    event: AgendaItem

    @property
    def fingerprint(self) -> str:
        f, e = self.formation, self.event
        return conflict_fingerprint(f.start, f.end, e.start, e.end)

    @property
    def ids(self) -> tuple[int, int, str]:
        """As calendars.availability.dismissed_conflicts gives the dismissed ones."""
        return self.formation.pk, self.event.pk, self.fingerprint


def clashes(items: Iterable[AgendaItem]) -> list[Clash]:
    """The formations (not cancelled) and busy events among `items` that overlap, as
    calendars.availability.learner_conflicts sees them: touching is not overlapping."""
    formations = [i for i in items if i.is_formation and not i.cancelled]
    events = sorted(
        (i for i in items if not i.is_formation and i.busy and not i.cancelled),
        key=lambda i: i.start,
    )
    if not formations or not events:
        return []
    starts = [e.start for e in events]
    longest = max(e.end - e.start for e in events)
    found = []
    for formation in formations:
        # Only events starting within `longest` before the formation can still run over it.
        first = bisect_left(starts, formation.start - longest)
        last = bisect_left(starts, formation.end)
        found += [Clash(formation, e) for e in events[first:last] if e.end > formation.start]
    return found


def mark_conflicts(
    items: Sequence[AgendaItem], found: Iterable[Clash], dismissed: Collection[tuple[int, int, str]]
) -> list[AgendaItem]:
    """`items` with their `conflicts` set from the clashes `found`, but those the learner
    dismissed (`dismissed`, as calendars.availability.dismissed_conflicts gives them)."""
    others: dict[str, list[AgendaItem]] = defaultdict(list)
    for clash in found:
        if clash.ids not in dismissed:
            others[clash.formation.key].append(clash.event)
            others[clash.event.key].append(clash.formation)
    return [replace(i, conflicts=tuple(others[i.key])) if i.key in others else i for i in items]
