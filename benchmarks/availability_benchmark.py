"""How fast staff see which of a formation's learners are busy, with a million imported events.

A scratch PostgreSQL database (dropped and created again; `--sqlite` for a temporary SQLite
file instead, with smaller numbers) gets `--learners` learners (500), each with one calendar
imported holding `--events` events (2,000: a million in all) spread over the import window
(30 days back, a year ahead): mostly an hour or two in working hours, some all-day, some free,
cancelled or declined. A formation has all of them enrolled, another the first `--few` (50);
`--formations` more (100, a page of the admin's list) have all of them, as many the few.

Each staff view is measured for both sizes: SQL statements (the same for both is a target:
they must not grow with learners or events) and time, the median of `--repeat` runs (3) after
one not counted, with their spread (fastest–slowest). Times are also given as ratios to two
baselines measured in the same run: a `SELECT 1` round trip, and a plain count using an index
over the same table (the events of the formation's learners that start during it). It exits 0
whether or not a target is met: it measures, it does not test. `--explain` prints PostgreSQL's
plans (EXPLAIN ANALYZE) of the overlap queries. See benchmarks/README.md.

    python benchmarks/availability_benchmark.py [--learners 500] [--few 50] [--events 2000] \\
        [--formations 100] [--repeat 3] [--database-url URL] [--keep-database] [--explain] \\
        [--sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import harness

DEFAULT_DATABASE_URL = "postgres://calendar:calendar@127.0.0.1:5432/calendar_bench_availability"
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
EVENT_COLUMNS = [
    "calendar_id", "external_id", "ical_uid", "title", "description", "location", "online_url",
    "start", "end", "all_day", "start_date", "end_date", "time_zone", "status", "series_id",
    "change_marker", "html_link", "response", "busy", "generation", "updated_at",
]  # fmt: skip


# --- the data ------------------------------------------------------------------------------------


def _events(calendar_id: int, count: int, rng: random.Random, today: date) -> list[tuple]:
    """`count` rows of EVENT_COLUMNS for one calendar, over the import window."""
    rows = []
    now = datetime.now(PARIS)
    for n in range(count):
        day = today + timedelta(days=rng.randrange(-30, 365))
        kind = rng.random()
        status, response, busy = "confirmed", "", True
        if kind < 0.03:
            busy = False  # shown as free
        elif kind < 0.05:
            status = "cancelled"
        elif kind < 0.07:
            response = "declined"
        elif kind < 0.2:
            response = "accepted"
        if rng.random() < 0.02:  # all day, one to three days
            days = rng.choice((1, 1, 1, 2, 3))
            start = datetime.combine(day, datetime.min.time(), tzinfo=PARIS)
            end = start + timedelta(days=days)
            dates = (day, day + timedelta(days=days))
            all_day = True
        else:
            start = datetime.combine(day, datetime.min.time(), tzinfo=PARIS) + timedelta(
                minutes=rng.randrange(7 * 60, 19 * 60, 15)
            )
            end = start + timedelta(minutes=rng.choice((30, 60, 60, 60, 90, 120, 180)))
            dates = (None, None)
            all_day = False
        rows.append((
            calendar_id, f"c{calendar_id}-e{n}", "", f"Réunion {n}", "", "", "", start, end,
            all_day, *dates, "Europe/Paris" if all_day else "", status, "", "", "", response,
            busy, 1, now,
        ))  # fmt: skip
    return rows


def _insert_events(rows: list[tuple]) -> None:
    from django.db import connection

    from calendars.models import CalendarEvent

    if connection.vendor == "postgresql":
        columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
        with connection.cursor() as cursor:
            copy_sql = f"COPY {CalendarEvent._meta.db_table} ({columns}) FROM STDIN"
            with cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
    else:
        CalendarEvent.objects.bulk_create(
            (CalendarEvent(**dict(zip(EVENT_COLUMNS, row, strict=True))) for row in rows),
            batch_size=2000,
        )


@dataclass
class Data:
    staff: Any
    big: Any  # the formation with every learner
    small: Any  # with the first `few`
    page_big: list[Any]  # a page of the list, every learner in each
    page_small: list[Any]


def make_data(args: argparse.Namespace) -> Data:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from django.utils import timezone

    from calendars.models import Calendar, CalendarIntegration
    from formations.models import Enrollment, Formation

    User = get_user_model()
    rng = random.Random(7)  # noqa: S311 (made-up calendars, the same at every run)
    today = timezone.localdate(timezone.now(), PARIS)
    with transaction.atomic():
        staff = User.objects.create_user("bench-staff", is_staff=True, is_superuser=True)
        learners = User.objects.bulk_create(
            User(username=f"learner{n:04d}", first_name=f"Prénom{n}", last_name=f"Nom{n}",
                 password=make_password(None))
            for n in range(args.learners)
        )  # fmt: skip
        integrations = CalendarIntegration.objects.bulk_create(
            CalendarIntegration(user=u, provider="google", account_email=f"{u.username}@x.test",
                                credentials="")
            for u in learners
        )  # fmt: skip
        calendars = Calendar.objects.bulk_create(
            Calendar(integration=i, external_id="primary", name="Agenda", is_primary=True,
                     can_edit=True, import_enabled=True, last_imported_at=timezone.now())
            for i in integrations
        )  # fmt: skip
    harness.progress(f"Writing {args.learners * args.events:,} events...")
    started = time.perf_counter()
    for chunk in range(0, len(calendars), 50):
        rows = []
        for calendar in calendars[chunk : chunk + 50]:
            rows += _events(calendar.pk, args.events, rng, today)
        with transaction.atomic():
            _insert_events(rows)
    harness.progress(f"  in {time.perf_counter() - started:.0f} s")

    # Formations two weeks ahead, on weekdays, 9:00 to 12:00 or 14:00 to 17:00.
    monday = today + timedelta(days=14 - today.weekday())

    def at(n: int) -> datetime:
        day = monday + timedelta(days=(n // 2) % 5 + 7 * (n // 10))
        return datetime.combine(day, datetime.min.time(), tzinfo=PARIS) + timedelta(
            hours=9 if n % 2 == 0 else 14
        )

    def formation(title: str, start: datetime, people: list[Any]) -> Any:
        created = Formation.objects.create(title=title, start=start,
                                           end=start + timedelta(hours=3))  # fmt: skip
        Enrollment.objects.bulk_create(Enrollment(learner=p, formation=created) for p in people)
        return created

    few = learners[: args.few]
    # No signal should send anything: the learners' exports are off.
    CalendarIntegration.objects.update(export_enabled=False, sync_enabled=False)
    with transaction.atomic():
        big = formation("Tous les apprenants", at(1), learners)
        small = formation("Quelques apprenants", at(1), few)
        page_big = [formation(f"Grand groupe {n}", at(n), learners) for n in range(args.formations)]
        page_small = [formation(f"Petit groupe {n}", at(n), few) for n in range(args.formations)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    return Data(staff, big, small, page_big, page_small)


def rebuild_index(*, keep: bool) -> float | None:
    """Drops the index of busy events' spans (the migration made it on an empty table) and,
    with `keep`, builds it again over the events: how long that takes (None without)."""
    from django.db import connection

    from calendars.models import CalendarEvent

    index = next(i for i in CalendarEvent._meta.indexes if i.name == "calendarevent_busy_span")
    with connection.schema_editor() as editor:
        editor.remove_index(CalendarEvent, index)
    if not keep:
        return None
    started = time.perf_counter()
    with connection.schema_editor() as editor:
        editor.add_index(CalendarEvent, index)
    seconds = time.perf_counter() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE calendars_calendarevent")
    return seconds


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Figure:
    view: str
    learners: int
    queries: int
    times: list[float]  # seconds

    @property
    def median(self) -> float:
        return harness.median(self.times)


def measure(view: str, learners: int, work: Callable[[], Any], repeat: int) -> Figure:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    work()  # not counted: warms the caches (the database's and Django's)
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        work()
    # Now: the next request empties the log.
    queries = len(harness.statements(captured))
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return Figure(view, learners, queries, times)


def _client(staff: Any) -> Any:
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(staff)
    return client


def _get(client: Any, url: str, **params: str) -> Callable[[], Any]:
    def get() -> Any:
        response = client.get(url, params)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code}")
        return response

    return get


def measure_all(data: Data, args: argparse.Namespace) -> tuple[list[Figure], list[Figure]]:
    from django.db import connection
    from django.urls import reverse
    from django.utils import timezone

    from calendars.availability import formation_availability, formations_busy_counts, free_slots
    from calendars.models import CalendarEvent
    from formations.models import Enrollment

    client = _client(data.staff)
    today = timezone.localdate(timezone.now(), PARIS)

    def select_one() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    def indexed_count() -> int:
        formation = data.big
        return CalendarEvent.objects.filter(
            calendar__integration__user_id__in=Enrollment.objects.filter(
                formation=formation
            ).values("learner_id"),
            start__gte=formation.start,
            start__lt=formation.end,
        ).count()

    harness.progress("Measuring the baselines...")
    baselines = [
        measure("SELECT 1", 0, select_one, args.repeat),
        measure("indexed count", args.learners, indexed_count, args.repeat),
    ]
    figures = []
    sizes = [(args.learners, data.big, data.page_big, "Grand groupe"),
             (args.few, data.small, data.page_small, "Petit groupe")]  # fmt: skip
    for learners, formation, page, search in sizes:
        harness.progress(f"Measuring the views for {learners} learners...")
        change = reverse("admin:formations_formation_change", args=[formation.pk])
        slots = reverse("admin:formations_formation_slots", args=[formation.pk])
        changelist = reverse("admin:formations_formation_changelist")
        views: list[tuple[str, Callable[[], Any]]] = [
            ("formation_availability", lambda f=formation: formation_availability(formation=f)),
            ("change page", _get(client, change)),
            ("formations_busy_counts (page)", lambda p=page: formations_busy_counts(p)),
            ("list page", _get(client, changelist, q=search)),
            ("free_slots, 4 weeks", lambda f=formation: free_slots(
                formation=f, since=today, until=today + timedelta(weeks=4),
                now=timezone.now())),
            ("slots page", _get(client, slots)),
        ]  # fmt: skip
        figures += [measure(name, learners, work, args.repeat) for name, work in views]
    return baselines, figures


def explain(data: Data) -> None:
    """PostgreSQL's plans of the overlap queries, executed (EXPLAIN ANALYZE, BUFFERS)."""
    from django.db import connection
    from django.db.models import Q
    from django.utils import timezone

    from calendars.availability import _around, _busy_rows, _learners_of, busy_events

    formation, page = data.big, data.page_big
    today = timezone.localdate(timezone.now(), PARIS)
    first = datetime.combine(today, datetime.min.time(), tzinfo=PARIS)
    around = _around((f.start, f.end) for f in page)
    queries = {
        "formation_availability: who is busy over the formation": busy_events(
            _learners_of([formation.pk])
        )
        .filter(start__lt=formation.end, end__gt=formation.start)
        .order_by()
        .values_list("calendar__integration__user_id", flat=True)
        .distinct(),
        "free_slots: the learners' busy times over four weeks": _busy_rows(
            _learners_of([formation.pk]), first, first + timedelta(weeks=4), Q()
        ),
        "formations_busy_counts: the busy times over a page of formations": _busy_rows(
            _learners_of([f.pk for f in page]),
            min(f.start for f in page),
            max(f.end for f in page),
            around,
        ),
    }
    for label, queryset in queries.items():
        sql, params = queryset.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            plan = "\n".join("    " + row[0] for row in cursor.fetchall())
        print(f"\n  {label}\n{plan}")


# --- the report ---------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}" if seconds >= 0.01 else f"{seconds * 1000:.3f}"


def report(baselines: list[Figure], figures: list[Figure], args: argparse.Namespace,
           database: str) -> None:  # fmt: skip
    select_one, counted = (b.median for b in baselines)
    without = "; WITHOUT the index calendarevent_busy_span" if args.without_index else ""
    print(f"  database: {database}; {args.learners} learners x {args.events:,} events "
          f"= {args.learners * args.events:,} events; list page of {args.formations} "
          f"formations; median of {args.repeat} after one not counted{without}")  # fmt: skip
    print()
    rows = [
        [b.view, str(b.learners or ""), str(b.queries), _ms(b.median),
         f"{_ms(min(b.times))}–{_ms(max(b.times))}", f"{b.median / select_one:,.0f}", ""]
        for b in baselines
    ]  # fmt: skip
    for f in figures:
        rows.append([f.view, str(f.learners), str(f.queries), _ms(f.median),
                     f"{_ms(min(f.times))}–{_ms(max(f.times))}",
                     f"{f.median / select_one:,.0f}", f"{f.median / counted:,.1f}"])  # fmt: skip
    print(harness.table(["measure", "learners", "queries", "median ms", "spread ms",
                         "x SELECT 1", "x indexed count"], rows))  # fmt: skip
    print()
    checks: list[harness.Check] = []
    by_view: dict[str, dict[int, Figure]] = {}
    for f in figures:
        by_view.setdefault(f.view, {})[f.learners] = f
    for view, sizes in by_view.items():
        many, few = sizes[args.learners], sizes[args.few]
        label = f"{view}: same queries with {args.few} and {args.learners} learners"
        checks.append((label, f"{few.queries} and {many.queries}", few.queries == many.queries))
    harness.print_checks(checks)
    harness.print_tally(checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=500, help="Learners (default 500).")
    parser.add_argument("--few", type=int, default=50,
                        help="Learners of the small formations (default 50).")  # fmt: skip
    parser.add_argument("--events", type=int, default=2000,
                        help="Imported events per learner (default 2000).")  # fmt: skip
    parser.add_argument("--formations", type=int, default=100,
                        help="Formations on the list's page (default 100).")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="Timed runs (default 3).")
    harness.add_scratch_database_arguments(
        parser, default=DEFAULT_DATABASE_URL, variable="BENCH_AVAILABILITY_DATABASE_URL"
    )
    parser.add_argument("--explain", action="store_true",
                        help="Print PostgreSQL's plans of the overlap queries.")  # fmt: skip
    parser.add_argument("--without-index", action="store_true",
                        help="Drop the index of busy events' spans (calendarevent_busy_span) "
                        "first, to see what it buys.")  # fmt: skip
    parser.add_argument("--sqlite", action="store_true",
                        help="A temporary SQLite file instead of PostgreSQL (pass smaller "
                        "numbers, e.g. --learners 100 --few 10 --events 500).")  # fmt: skip
    args = parser.parse_args(argv)
    if not 0 < args.few < args.learners or args.events < 1 or args.repeat < 1:
        parser.error("--few must be below --learners; --events and --repeat positive")
    if not args.sqlite:
        problem = harness.check_scratch_database(args.database_url)
        if problem:
            parser.error(problem)
    harness.exit_on_sigterm()

    if args.sqlite:
        os.environ.pop("DATABASE_URL", None)  # the harness's temporary file
        database: Any = contextlib.nullcontext()
    else:
        os.environ["DATABASE_URL"] = args.database_url
        database = harness.scratch_database(args.database_url, keep=args.keep_database)
    with database, harness.bench("availability-bench-") as bench:
        harness.print_heading("Availability benchmark (benchmarks/availability_benchmark.py)")
        data = make_data(args)
        built = rebuild_index(keep=not args.without_index)
        baselines, figures = measure_all(data, args)
        report(baselines, figures, args, bench.database)
        if built is not None:
            print(f"\n  Building the index calendarevent_busy_span over the "
                  f"{args.learners * args.events:,} events took {built:.1f} s.")  # fmt: skip
        if args.explain and not args.sqlite:
            explain(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
