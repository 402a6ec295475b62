"""How fast the import engine brings a large calendar in, and what it costs.

Runs the provider sandbox in its own process (`manage.py calendar_sandbox`) on free loopback
ports, points this process's Django at it as CALENDAR_SANDBOX=true does, connects a Google and
an Outlook account through the real consent flow, and for two sizes (N/2 and N events in each
primary calendar) measures:

- a full import (from an empty calendar): wall time, events per second, list requests seen by
  the sandbox, SQL queries (and per page), peak Python memory (tracemalloc, in a separate run
  so that its overhead does not count in the timings);
- an incremental import with no change right after: wall time, requests, database writes;
- a full re-import after the provider refuses the sync token (410), over unchanged events.

In the same run, alternating with the full imports, it measures what they are compared with
(`harness.baselines`): the floor, that is the same pages (captured once from the sandbox)
decoded from memory, normalised by the providers' own functions and inserted with one prepared
statement per page; and, for Google, gcal_sync syncing the same listing. Each repeat gives a
ratio (floor time / import time, gcal_sync time / import time); their median and spread are
printed.

It prints figures next to the targets of issues 5 ("Speed") and 17 ("Speed near the floor") and
exits 0 even when one is missed: it is a measurement, not a test. See benchmarks/README.md.

    python benchmarks/import_benchmark.py [--events 10000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import secrets
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import harness
from harness import baselines

TITLES = {"google": "Google", "outlook": "Outlook (Graph)"}
# Issue 5, "Speed".
TARGET_RATE = 5000  # events per second, end to end
TARGET_INCREMENTAL_REQUESTS = 1
TARGET_INCREMENTAL_WRITES = 0
# Issue 17, "Speed near the floor".
TARGET_FLOOR_RATIO = 0.75  # floor time / import time
TARGET_GCAL_RATIO = 1.0  # gcal_sync time / import time: faster than gcal_sync
WRITE_VERBS = {"INSERT", "UPDATE", "DELETE", "REPLACE"}


# --- measuring -----------------------------------------------------------------------------


@contextlib.contextmanager
def phase_timer(provider_name: str) -> Iterator[dict[str, float]]:
    """Time spent listing (HTTP, JSON, normalizing: provider.calendars.list_events), applying
    pages (importing._apply: the page's queries) and getting access tokens
    (credentials.integration_access_token), by wrapping the three for the run only."""
    from calendars.providers import get_provider
    from calendars.services import credentials
    from calendars.sync import importing

    spent = {"fetch": 0.0, "apply": 0.0, "token": 0.0}
    provider = get_provider(provider_name)

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return wrapper

    client = provider.calendars
    original_apply, original_token = importing._apply, credentials.integration_access_token
    client.list_events = timed("fetch", client.list_events)  # type: ignore[method-assign]
    importing._apply = timed("apply", original_apply)
    credentials.integration_access_token = timed("token", original_token)
    try:
        yield spent
    finally:
        del client.list_events  # the class's method again
        importing._apply = original_apply
        credentials.integration_access_token = original_token


@dataclass
class Run:
    seconds: float
    created: int
    updated: int
    deleted: int
    skipped: int
    full: bool
    list_requests: int
    other_requests: Counter[str]
    queries: Counter[str]
    fetch_seconds: float
    apply_seconds: float
    token_seconds: float
    peak_bytes: int | None = None

    @property
    def total_queries(self) -> int:
        return sum(self.queries.values())

    @property
    def writes(self) -> int:
        return sum(n for verb, n in self.queries.items() if verb in WRITE_VERBS)

    @property
    def rate(self) -> float:
        return self.created / self.seconds if self.seconds else 0.0


def import_once(sandbox: harness.SandboxProcess, calendar_pk: int, provider: str, *,
                trace_memory: bool = False) -> Run:  # fmt: skip
    """One calendar_import of the calendar, loaded as integration_import loads it."""
    from django.db import connection

    from calendars.models import Calendar
    from calendars.sync.importing import calendar_import

    calendar = Calendar.objects.select_related("integration").get(pk=calendar_pk)
    before = sandbox.provider_requests()
    counter = harness.QueryCounter()
    gc.collect()
    if trace_memory:
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
    try:
        with connection.execute_wrapper(counter), phase_timer(provider) as spent:
            started = time.perf_counter()
            result = calendar_import(calendar=calendar)
            seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - baseline if trace_memory else None
    finally:
        if trace_memory:
            tracemalloc.stop()
    requests_made = sandbox.provider_requests() - before
    list_requests = requests_made.pop(harness.LIST_ENDPOINT[provider], 0)
    return Run(
        seconds=seconds,
        created=result.created,
        updated=result.updated,
        deleted=result.deleted,
        skipped=result.skipped,
        full=result.full,
        list_requests=list_requests,
        other_requests=requests_made,
        queries=counter.verbs,
        fetch_seconds=spent["fetch"],
        apply_seconds=spent["apply"],
        token_seconds=spent["token"],
        peak_bytes=peak,
    )


def forget_events(calendar_pk: int) -> None:
    """Back to a never-imported calendar, so that the next import is a full one from empty."""
    from calendars.models import Calendar, CalendarEvent

    CalendarEvent.objects.filter(calendar_id=calendar_pk).delete()
    Calendar.objects.filter(pk=calendar_pk).update(sync_token="", resume_from="")


@dataclass
class ProviderFigures:
    provider: str
    size: int
    listed_by_sandbox: int
    memory: Run
    full: list[Run] = field(default_factory=list)
    incremental: list[Run] = field(default_factory=list)
    reimport: Run | None = None
    floor: list[float] = field(default_factory=list)  # seconds, one per full import
    floor_rows: int = 0
    gcal: list[float] = field(default_factory=list)  # seconds (Google), one per full import
    gcal_items: int = 0

    @property
    def floor_ratios(self) -> list[float]:
        return [f / run.seconds for f, run in zip(self.floor, self.full, strict=True)]

    @property
    def gcal_ratios(self) -> list[float]:
        return [g / run.seconds for g, run in zip(self.gcal, self.full, strict=True)]

    @property
    def full_median(self) -> Run:
        return harness.middle(self.full, key=lambda r: r.seconds)

    @property
    def incremental_median(self) -> Run:
        return harness.middle(self.incremental, key=lambda r: r.seconds)


def bench_size(sandbox: harness.SandboxProcess, size: int, repeat: int) -> list[ProviderFigures]:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username=f"bench-{size}-{secrets.token_hex(4)}")
    figures = []
    try:
        for provider in ("google", "outlook"):
            integration = harness.connect(user, provider)
            calendar = integration.calendars.filter(is_primary=True).first()
            if calendar is None:  # connected, but listing the calendars failed
                raise RuntimeError(f"{TITLES[provider]}: no primary calendar after connecting.")
            harness.progress(f"  {TITLES[provider]}: full import under tracemalloc")
            memory = import_once(sandbox, calendar.pk, provider, trace_memory=True)
            item = ProviderFigures(
                provider, size, sandbox.primary_entries(harness.ACCOUNTS[provider]), memory
            )
            listing = baselines.capture_listing(calendar)
            harness.progress(f"  {TITLES[provider]}: {len(listing.pages)} pages captured")
            for attempt in range(repeat):
                # The floor, our import, gcal_sync (Google), in turn.
                forget_events(calendar.pk)
                harness.progress(f"  {TITLES[provider]}: floor {attempt + 1}/{repeat}")
                seconds, item.floor_rows = baselines.floor_import(listing)
                item.floor.append(seconds)
                forget_events(calendar.pk)
                harness.progress(f"  {TITLES[provider]}: full import {attempt + 1}/{repeat}")
                item.full.append(import_once(sandbox, calendar.pk, provider))
                if provider == "google":
                    harness.progress(f"  {TITLES[provider]}: gcal_sync {attempt + 1}/{repeat}")
                    seconds, item.gcal_items = baselines.gcal_sync_import(calendar)
                    item.gcal.append(seconds)
            for attempt in range(repeat):
                harness.progress(f"  {TITLES[provider]}: incremental import {attempt + 1}/{repeat}")
                item.incremental.append(import_once(sandbox, calendar.pk, provider))
            harness.progress(f"  {TITLES[provider]}: re-import after the sync token is refused")
            sandbox.invalidate_sync(harness.ACCOUNTS[provider])
            item.reimport = import_once(sandbox, calendar.pk, provider)
            figures.append(item)
    finally:
        user.delete()
    return figures


# --- report --------------------------------------------------------------------------------


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def list_limit(provider: str, size: int) -> int:
    from calendars.providers.google import api as google
    from calendars.providers.outlook import api as outlook

    page = google.EVENTS_PAGE_SIZE if provider == "google" else outlook.EVENTS_PAGE_SIZE
    return math.ceil(size / page)


def report(figures: list[ProviderFigures], repeat: int) -> None:
    print(
        "\nFull import, from an empty calendar" + (f" (median of {repeat})" if repeat > 1 else "")
    )
    rows = []
    for f in figures:
        run = f.full_median
        pages = run.list_requests
        rows.append([
            f"{f.size:,}", TITLES[f.provider], f"{run.created:,}", f"{run.skipped:,}",
            f"{run.seconds:.2f}", f"{run.rate:,.0f}", str(pages),
            str(sum(run.other_requests.values())), str(run.total_queries),
            f"{run.total_queries / pages:.1f}" if pages else "-", str(run.writes),
            f"{run.fetch_seconds:.2f}", f"{run.apply_seconds:.2f}", f"{run.token_seconds:.2f}",
            mib(f.memory.peak_bytes),
        ])  # fmt: skip
    print(harness.table(["events", "provider", "created", "skipped", "seconds", "events/s",
                         "list req", "other req", "queries", "q/page", "writes", "fetch s",
                         "apply s", "token s", "peak MiB"], rows))  # fmt: skip
    entries = ", ".join(f"{f.provider} {f.size:,}: {f.listed_by_sandbox:,}" for f in figures)
    print(
        "  fetch s: provider.list_events (HTTP to the sandbox, JSON, normalizing).\n"
        "  apply s: sync._apply (the page's queries). token s: integration_access_token.\n"
        "  The rest of the time is checkpoints and commits.\n"
        "  queries: every statement sent (SQLite's BEGIN included); writes: INSERT, UPDATE,\n"
        "  DELETE. peak MiB: tracemalloc peak of a separate full import (not timed).\n"
        "  created < events: the sandbox's calendars also hold cancelled entries, series\n"
        "  masters, skipped types and occurrences outside the window. Entries in them:\n"
        f"  {entries}."
    )
    others = Counter()
    for f in figures:
        others.update({f"{k} ({f.size:,})": v for k, v in f.full_median.other_requests.items()})
    if others:
        print("  other req: " + ", ".join(f"{k} x{v}" for k, v in sorted(others.items())))

    print("\nIncremental import right after, no change" + (f" (median of {repeat})" if repeat > 1
                                                          else ""))  # fmt: skip
    rows = []
    for f in figures:
        run = f.incremental_median
        rows.append([
            f"{f.size:,}", TITLES[f.provider], f"{run.seconds * 1000:.0f}", str(run.list_requests),
            str(sum(run.other_requests.values())), str(run.total_queries), str(run.writes),
            f"{run.created}/{run.updated}/{run.deleted}",
        ])  # fmt: skip
    print(harness.table(["events", "provider", "ms", "list req", "other req", "queries", "writes",
                         "created/updated/deleted"], rows))  # fmt: skip

    print("\nFull re-import after the provider refused the sync token (410), nothing changed")
    rows = []
    for f in figures:
        run = f.reimport
        if run is None:
            continue
        rows.append([
            f"{f.size:,}", TITLES[f.provider], f"{run.seconds:.2f}", str(run.list_requests),
            str(run.total_queries), str(run.writes),
            f"{run.created}/{run.updated}/{run.deleted}",
        ])  # fmt: skip
    print(harness.table(["events", "provider", "seconds", "list req", "queries", "writes",
                         "created/updated/deleted"], rows))  # fmt: skip
    print("  list req counts the refused incremental request too.")

    print("\nAgainst the floor and gcal_sync, full import, same run, one ratio per repeat")
    rows = []
    for f in figures:
        ours = [run.seconds for run in f.full]
        rows.append([
            f"{f.size:,}", TITLES[f.provider], f"{harness.median(ours):.2f}",
            f"{harness.median(f.floor):.2f}", f"{f.floor_rows:,}", _ratios(f.floor_ratios),
            f"{harness.median(f.gcal):.2f}" if f.gcal else "-", f"{f.gcal_items:,}" if f.gcal
            else "-", _ratios(f.gcal_ratios) if f.gcal else "-",
        ])  # fmt: skip
    print(harness.table(["events", "provider", "ours s", "floor s", "floor rows",
                         "floor/ours: median (spread) [each]", "gcal s", "gcal items",
                         "gcal/ours: median (spread) [each]"], rows))  # fmt: skip
    print(
        "  floor: the same pages, captured once, decoded from memory, normalised by the\n"
        "  providers' functions (Graph's series completed from masters already read) and\n"
        "  inserted by one prepared executemany per page, a transaction each. gcal_sync: its\n"
        "  CalendarEventSyncManager on the same listing (window, singleEvents) into its\n"
        "  in-memory store, through aiohttp. Ratios above 1: ours is faster."
    )

    print("\nTargets (issues 5, 'Speed', and 17, 'Speed near the floor')")
    checks: list[harness.Check] = []
    for f in figures:
        run, name = f.full_median, f"{TITLES[f.provider]}, {f.size:,} events"
        limit = list_limit(f.provider, f.size)
        unit = "list requests" if f.provider == "google" else "pages"
        checks.append((f"{name}: full import in <= {limit} {unit}", str(run.list_requests),
                       run.list_requests <= limit))  # fmt: skip
        checks.append((f"{name}: >= {TARGET_RATE:,} events/s end to end", f"{run.rate:,.0f}",
                       run.rate >= TARGET_RATE))  # fmt: skip
        if f.floor:
            ratio = harness.median(f.floor_ratios)
            checks.append((f"{name}: >= {TARGET_FLOOR_RATIO} of the floor (median)",
                           f"{ratio:.2f}", ratio >= TARGET_FLOOR_RATIO))  # fmt: skip
        if f.gcal:
            ratio = harness.median(f.gcal_ratios)
            checks.append((f"{name}: faster than gcal_sync (its time / ours, median)",
                           f"{ratio:.2f}", ratio > TARGET_GCAL_RATIO))  # fmt: skip
        incremental = f.incremental_median
        checks.append((f"{name}: incremental, {TARGET_INCREMENTAL_REQUESTS} request",
                       str(incremental.list_requests),
                       incremental.list_requests <= TARGET_INCREMENTAL_REQUESTS))  # fmt: skip
        checks.append((f"{name}: incremental, {TARGET_INCREMENTAL_WRITES} database writes",
                       str(incremental.writes),
                       incremental.writes <= TARGET_INCREMENTAL_WRITES))  # fmt: skip
    by_provider: dict[str, list[ProviderFigures]] = {}
    for f in figures:
        by_provider.setdefault(f.provider, []).append(f)
    for provider, items in by_provider.items():
        if len(items) < 2:
            continue
        ordered = sorted(items, key=lambda f: f.size)
        small, large = ordered[0], ordered[-1]
        s, g = small.full_median, large.full_median
        if s.list_requests and g.list_requests:
            per_page_s = s.total_queries / s.list_requests
            per_page_g = g.total_queries / g.list_requests
            checks.append((
                f"{TITLES[provider]}: SQL queries grow with pages, not events",
                f"{s.total_queries} q / {s.list_requests} pages -> "
                f"{g.total_queries} q / {g.list_requests} pages "
                f"({per_page_s:.1f} -> {per_page_g:.1f} per page)",
                per_page_g <= per_page_s * 1.25 + 1,
            ))  # fmt: skip
        if small.memory.peak_bytes and large.memory.peak_bytes:
            ratio = large.memory.peak_bytes / small.memory.peak_bytes
            checks.append((
                f"{TITLES[provider]}: peak memory bounded as events grow",
                f"{mib(small.memory.peak_bytes)} MiB -> {mib(large.memory.peak_bytes)} MiB "
                f"(x{ratio:.2f} for x{large.size / small.size:.0f} events)",
                ratio <= 1.3,
            ))  # fmt: skip
    harness.print_checks(checks)
    harness.print_tally(checks)


def _ratios(values: list[float]) -> str:
    if not values:
        return "-"
    each = " ".join(f"{v:.2f}" for v in values)
    return f"{harness.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) [{each}]"


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        default=10000,
        help="Events in each primary calendar for the larger run; the smaller one has half "
        "(default 10000).",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Full and incremental imports timed per provider and size; the median is "
        "reported (default 1).",
    )
    args = parser.parse_args(argv)
    if args.events < 2 or args.repeat < 1:
        parser.error("--events must be at least 2 and --repeat at least 1")
    sizes = sorted({args.events // 2, args.events})
    harness.exit_on_sigterm()

    figures: list[ProviderFigures] = []
    with harness.bench("import-bench-") as bench:
        from django.conf import settings

        harness.print_heading("Import benchmark (benchmarks/import_benchmark.py)")
        print(f"  database: {bench.database}")
        print(f"  import window: {settings.CALENDAR_IMPORT_DAYS_BACK} days back, "
              f"{settings.CALENDAR_IMPORT_DAYS_AHEAD} ahead; sizes: "
              f"{', '.join(f'{s:,}' for s in sizes)}; repeat: {args.repeat}")  # fmt: skip
        for size in sizes:
            harness.progress(f"Sandbox with {size:,} events per primary calendar...")
            with bench.sandbox(events=size, log=f"sandbox-{size}.log") as sandbox:
                harness.progress(f"  ready in {sandbox.ready_seconds:.1f} s (pid {sandbox.pid}, "
                                 f"{sandbox.http_url})")  # fmt: skip
                figures += bench_size(sandbox, size, args.repeat)
    report(figures, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
