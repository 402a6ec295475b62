"""Where the week and day views draw each item (calendars/layout.py): pure functions, no
database."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta

from calendars.agenda import AgendaItem
from calendars.layout import (
    DAY_MINUTES,
    MIN_MINUTES,
    Bar,
    place_blocks,
    stack_bars,
    time_grid,
    wall_minutes,
)

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
DAY = date(2027, 4, 8)  # a Thursday
MONDAY = date(2027, 4, 5)
counter = iter(range(1, 100_000))


def timed(start: str, end: str, day: date = DAY, end_day: date | None = None, title: str = ""):
    """An item from `start` on `day` to `end` on `end_day` (by default the same day), as the
    learner's wall clock in Paris says them; through UTC, as the agenda reads them."""
    n = next(counter)

    def moment(day: date, clock: str) -> datetime:
        wall = datetime.combine(day, datetime.strptime(clock, "%H:%M").time(), tzinfo=PARIS)
        return wall.astimezone(UTC).astimezone(PARIS)

    begin, finish = moment(day, start), moment(end_day or day, end)
    last = (finish - timedelta(microseconds=1)).date() if finish > begin else begin.date()
    return AgendaItem(
        key=f"event-{n}", source="google", title=title or f"{start}-{end}", start=begin,
        end=finish, all_day=False, first_day=begin.date(), last_day=last,
    )  # fmt: skip


def all_day(first: date, days: int = 1, title: str = "") -> AgendaItem:
    n = next(counter)
    return AgendaItem(
        key=f"event-{n}", source="google", title=title or f"all-day {n}",
        start=datetime.combine(first, datetime.min.time(), tzinfo=PARIS),
        end=datetime.combine(first + timedelta(days=days), datetime.min.time(), tzinfo=PARIS),
        all_day=True, first_day=first, last_day=first + timedelta(days=days - 1),
    )  # fmt: skip


def placed(blocks):
    """title → (top, bottom, column, columns, span)."""
    return {b.item.title: (b.top, b.bottom, b.column, b.columns, b.span) for b in blocks}


# --- timed items in their day's column ----------------------------------------------------


def test_an_item_is_placed_by_its_minutes_from_midnight():
    (block,) = place_blocks([timed("09:30", "11:00")], DAY)

    assert (block.top, block.bottom) == (570, 660)
    assert (block.column, block.columns, block.span) == (0, 1, 1)
    assert block.style == "--top: 39.5833%; --height: 6.25%; --left: 0%; --width: 100%"
    assert block.when == "09:30–11:00"


def test_overlapping_items_are_side_by_side():
    blocks = place_blocks([timed("10:00", "11:00", title="B"), timed("09:00", "10:30", title="A")],
                          DAY)  # fmt: skip

    assert placed(blocks) == {"A": (540, 630, 0, 2, 1), "B": (600, 660, 1, 2, 1)}
    assert [b.item.title for b in blocks] == ["A", "B"]  # reading order: by time
    assert "--left: 50%; --width: 50%" in blocks[1].style


def test_touching_items_do_not_overlap():
    items = [
        timed("09:00", "10:00", title="A"),
        timed("09:00", "10:00", title="A bis"),
        timed("10:00", "11:00", title="B"),
    ]

    assert placed(place_blocks(items, DAY)) == {
        "A": (540, 600, 0, 2, 1),
        "A bis": (540, 600, 1, 2, 1),
        "B": (600, 660, 0, 1, 1),  # a group of its own, the column's whole width
    }


def test_nested_overlaps_share_columns_and_widen_into_free_ones():
    # A long morning; two meetings inside it one after the other; a third that overlaps the
    # first of them only. Later, on its own, a lunch.
    items = [
        timed("09:00", "12:00", title="Matinée"),
        timed("09:30", "10:30", title="Réunion 1"),
        timed("10:00", "10:45", title="Appel"),
        timed("11:00", "11:30", title="Réunion 2"),
        timed("12:30", "13:30", title="Déjeuner"),
    ]

    assert placed(place_blocks(items, DAY)) == {
        "Matinée": (540, 720, 0, 3, 1),
        "Réunion 1": (570, 630, 1, 3, 1),
        "Appel": (600, 645, 2, 3, 1),
        # Column 1 is free again after 10:30; nothing is in column 2 after 10:45: it widens.
        "Réunion 2": (660, 690, 1, 3, 2),
        "Déjeuner": (750, 810, 0, 1, 1),  # a cluster of its own: the whole width
    }


def test_the_longer_of_two_items_starting_together_is_on_the_left():
    blocks = place_blocks([timed("09:00", "09:30", title="Court"),
                           timed("09:00", "11:00", title="Long")], DAY)  # fmt: skip

    assert placed(blocks) == {"Long": (540, 660, 0, 2, 1), "Court": (540, 570, 1, 2, 1)}


def test_a_short_item_takes_the_least_height_and_counts_it_in_overlaps():
    blocks = place_blocks([timed("09:00", "09:05", title="Bref"),
                           timed("09:20", "10:00", title="Suite")], DAY)  # fmt: skip

    assert placed(blocks) == {
        "Bref": (540, 540 + MIN_MINUTES, 0, 2, 1),
        "Suite": (560, 600, 1, 2, 1),  # drawn beside it rather than under it
    }


def test_a_short_item_at_the_end_of_the_day_stays_inside_the_column():
    (block,) = place_blocks([timed("23:50", "00:00", end_day=DAY + timedelta(days=1))], DAY)

    assert (block.top, block.bottom) == (DAY_MINUTES - MIN_MINUTES, DAY_MINUTES)


def test_an_item_ending_at_midnight_reaches_the_bottom():
    (block,) = place_blocks([timed("20:00", "00:00", end_day=DAY + timedelta(days=1))], DAY)

    assert (block.top, block.bottom) == (1200, DAY_MINUTES)
    assert block.when == "20:00–00:00"


def test_an_item_crossing_midnight_is_clipped_to_each_day():
    night = timed("22:00", "02:00", end_day=DAY + timedelta(days=1))

    assert placed(place_blocks([night], DAY)) == {night.title: (1320, DAY_MINUTES, 0, 1, 1)}
    assert placed(place_blocks([night], DAY + timedelta(days=1))) == {
        night.title: (0, 120, 0, 1, 1)
    }


def test_the_days_that_change_the_clocks_place_items_at_their_wall_clock_time():
    spring, autumn = date(2027, 3, 28), date(2027, 10, 31)  # 23 and 25 hours in Paris
    for day, hours in ((spring, 23), (autumn, 25)):
        midnight, next_midnight = (
            datetime.combine(d, datetime.min.time(), tzinfo=PARIS).astimezone(UTC)
            for d in (day, day + timedelta(days=1))
        )
        assert next_midnight - midnight == timedelta(hours=hours)
    for day in (spring, autumn):
        blocks = place_blocks([timed("10:00", "11:30", day=day), timed("00:30", "01:30", day=day)],
                              day)  # fmt: skip
        assert [(b.top, b.bottom) for b in blocks] == [(30, 90), (600, 690)]

    # Across the change: 01:30 → 03:30 lasts one hour on the spring day, two hours on the
    # clock; three on the autumn day. Both are drawn from 01:30 to 03:30, as the clock says.
    for day in (spring, autumn):
        (block,) = place_blocks([timed("01:30", "03:30", day=day)], day)
        assert (block.top, block.bottom) == (90, 210)


def test_in_the_repeated_hour_an_item_that_ends_before_it_starts_on_the_clock_is_drawn():
    # 02:40 (summer time) → 02:10 (winter time): half an hour, backwards on the clock.
    start = datetime(2027, 10, 31, 2, 40, tzinfo=PARIS, fold=0)
    end = datetime(2027, 10, 31, 2, 10, tzinfo=PARIS, fold=1)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(minutes=30)
    item = timed("02:40", "03:00", day=date(2027, 10, 31))
    item = AgendaItem(**{**item.__dict__, "start": start, "end": end})

    (block,) = place_blocks([item], date(2027, 10, 31))

    assert (block.top, block.bottom) == (160, 160 + MIN_MINUTES)


def test_wall_minutes_are_bounded_by_the_day():
    assert wall_minutes(datetime(2027, 4, 7, 23, tzinfo=PARIS), DAY) == 0
    assert wall_minutes(datetime(2027, 4, 8, 23, 59, tzinfo=PARIS), DAY) == 1439
    assert wall_minutes(datetime(2027, 4, 9, 0, 0, tzinfo=PARIS), DAY) == DAY_MINUTES


# --- the all-day row ----------------------------------------------------------------------


def bars(items, start=MONDAY, days=7) -> list[tuple[str, int, int, int, bool, bool]]:
    return [
        (b.item.title, b.column, b.span, b.lane, b.before, b.after)
        for b in stack_bars(items, start, start + timedelta(days=days))
    ]


def test_an_item_over_several_days_is_one_bar_across_them():
    assert bars([all_day(date(2027, 4, 6), days=3, title="Salon")]) == [
        ("Salon", 1, 3, 0, False, False)
    ]


def test_bars_that_overlap_are_stacked_and_others_share_a_lane():
    items = [
        all_day(date(2027, 4, 5), days=2, title="Lun-Mar"),
        all_day(date(2027, 4, 6), days=3, title="Mar-Jeu"),
        all_day(date(2027, 4, 7), days=1, title="Mer"),
        all_day(date(2027, 4, 9), days=2, title="Ven-Sam"),
    ]

    assert bars(items) == [
        ("Lun-Mar", 0, 2, 0, False, False),
        ("Mar-Jeu", 1, 3, 1, False, False),
        ("Mer", 2, 1, 0, False, False),  # back on the top lane, free again on Wednesday
        ("Ven-Sam", 4, 2, 0, False, False),
    ]


def test_longer_bars_starting_the_same_day_go_on_top():
    items = [all_day(date(2027, 4, 6), title="Un jour"),
             all_day(date(2027, 4, 6), days=4, title="Quatre jours")]  # fmt: skip

    assert bars(items) == [("Quatre jours", 1, 4, 0, False, False),
                           ("Un jour", 1, 1, 1, False, False)]  # fmt: skip


def test_a_bar_is_cut_at_the_edges_of_the_days_shown_and_says_it_goes_on():
    items = [all_day(date(2027, 4, 1), days=20, title="Long")]

    assert bars(items) == [("Long", 0, 7, 0, True, True)]
    assert bars(items, start=DAY, days=1) == [("Long", 0, 1, 0, True, True)]
    assert Bar(items[0], 0, 7, 0).style == "--span: 7; --lane: 0"


def test_a_timed_item_over_midnight_is_a_bar_from_its_start_time():
    night = timed("22:00", "02:00", day=DAY, end_day=DAY + timedelta(days=1), title="Nuit")

    (bar,) = stack_bars([night], MONDAY, MONDAY + timedelta(days=7))

    assert (bar.column, bar.span, bar.when) == (3, 2, "22:00")
    # Seen from the next day only, it started before: no start time to show.
    (bar,) = stack_bars([night], DAY + timedelta(days=1), DAY + timedelta(days=2))
    assert (bar.before, bar.when) == (True, "")
    assert stack_bars([all_day(DAY)], DAY, DAY + timedelta(days=1))[0].when == ""


# --- the week ------------------------------------------------------------------------------


def test_the_week_grid_puts_each_item_once_in_its_row_or_column():
    salon = all_day(date(2027, 4, 6), days=3, title="Salon")
    night = timed("22:00", "02:00", day=DAY, end_day=DAY + timedelta(days=1), title="Nuit")
    meeting = timed("09:00", "10:00", title="Réunion")
    late = timed("20:00", "00:00", end_day=DAY + timedelta(days=1), title="Soirée")

    grid = time_grid([salon, night, meeting, late], MONDAY, MONDAY + timedelta(days=7))

    assert [d.date for d in grid.days] == [MONDAY + timedelta(days=n) for n in range(7)]
    assert grid.lanes == 2  # the night begins on the salon's last day: on the lane below
    assert [[b.item.title for b in d.bars] for d in grid.days] == [
        [],
        ["Salon"],
        [],
        ["Nuit"],
        [],
        [],
        [],
    ]
    assert [[b.item.title for b in d.blocks] for d in grid.days] == [
        [],
        [],
        [],
        ["Réunion", "Soirée"],
        [],
        [],
        [],
    ]
    assert [d.covered for d in grid.days] == [False, True, True, True, True, False, False]
    assert [d.empty for d in grid.days] == [True, False, False, False, False, True, True]
    assert all(d.now is None for d in grid.days)


def test_the_current_time_is_a_line_on_todays_column_only():
    now = datetime(2027, 4, 8, 13, 45, tzinfo=PARIS)

    grid = time_grid([], MONDAY, MONDAY + timedelta(days=7), now)

    assert [d.now for d in grid.days] == [None, None, None, 825, None, None, None]
    assert grid.days[3].now_top == "57.2917%"
    assert grid.lanes == 1  # an empty all-day row keeps its place
    assert [d.now for d in time_grid([], DAY, DAY + timedelta(days=1), now).days] == [825]
    assert time_grid([], MONDAY - timedelta(days=7), MONDAY, now).days[3].now is None
