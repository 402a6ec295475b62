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

It prints figures next to the targets of issue 5 ("Speed") and exits 0 even when one is missed:
it is a measurement, not a test. See benchmarks/README.md.

    python benchmarks/import_benchmark.py [--events 10000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import html.parser
import logging
import math
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
REDIRECT = "http://testserver/calendar/callback/{}"
ACCOUNTS = {"google": "camille.durand@gmail.test", "outlook": "camille.durand@contoso.test"}
LIST_ENDPOINT = {"google": "google.events.list", "outlook": "graph.delta"}
TITLES = {"google": "Google", "outlook": "Outlook (Graph)"}
# Issue 5, "Speed".
TARGET_RATE = 5000  # events per second, end to end
TARGET_INCREMENTAL_REQUESTS = 1
TARGET_INCREMENTAL_WRITES = 0
WRITE_VERBS = {"INSERT", "UPDATE", "DELETE", "REPLACE"}
# Variables that, set in the environment or .env, would point the app away from the sandbox.
ENDPOINT_VARIABLES = [
    "GOOGLE_AUTH_URI",
    "GOOGLE_TOKEN_URI",
    "GOOGLE_REVOKE_URI",
    "GOOGLE_API_URL",
    "OUTLOOK_AUTHORITY",
    "OUTLOOK_GRAPH_URL",
    "OUTLOOK_CA_BUNDLE",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "OUTLOOK_CLIENT_ID",
    "OUTLOOK_CLIENT_SECRET",
]


# --- the sandbox, in its own process -------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports the kernel considers free now (held together so that they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


class SandboxProcess:
    """`manage.py calendar_sandbox` in a child process, stopped on exit whatever happens."""

    def __init__(self, *, events: int, port: int, tls_port: int, state_dir: Path, log: Path):
        self.events = events
        self.http_url = f"http://{HOST}:{port}"
        self.command = [
            sys.executable,
            "manage.py",
            "calendar_sandbox",
            f"--host={HOST}",
            f"--port={port}",
            f"--tls-port={tls_port}",
            f"--events={events}",
            "--seed=1",
            f"--state-dir={state_dir}",
        ]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_seconds = 0.0

    def __enter__(self) -> SandboxProcess:
        started = time.perf_counter()
        # A port picked free may be taken meanwhile (by a client socket, for a moment).
        for attempt in range(5):
            with self.log.open("wb") as output:
                self.process = subprocess.Popen(  # noqa: S603 (our interpreter, our arguments)
                    self.command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
                )
            try:
                if self._wait_until_ready(timeout=180):
                    break
            except BaseException:
                self.stop()
                raise
            if attempt == 4 or "Cannot listen" not in self.log_tail():
                raise RuntimeError(f"The sandbox exited early:\n{self.log_tail()}")
            time.sleep(1)
        self.ready_seconds = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_until_ready(self, timeout: float) -> bool:
        """True once it answers; False if it exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            with contextlib.suppress(requests.RequestException):
                answer = requests.get(f"{self.http_url}/_sandbox/api/counters", timeout=1)
                # Ours, not another server that took the port: still running once it answers.
                if answer.ok and self.process is not None and self.process.poll() is None:
                    return True
            time.sleep(0.1)
        raise RuntimeError(f"The sandbox did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no output)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # the command stops its servers on SIGTERM
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    # The control API (README, "The provider sandbox").
    def counters(self) -> Counter[str]:
        response = requests.get(f"{self.http_url}/_sandbox/api/counters", timeout=10)
        response.raise_for_status()
        return Counter(response.json())

    def invalidate_sync(self, email: str) -> None:
        url = f"{self.http_url}/_sandbox/api/accounts/{email}/invalidate-sync"
        requests.post(url, timeout=10).raise_for_status()

    def primary_entries(self, email: str) -> int:
        response = requests.get(f"{self.http_url}/_sandbox/api/accounts", timeout=10)
        response.raise_for_status()
        account = next(a for a in response.json() if a["email"] == email)
        return next(c["events"] for c in account["calendars"] if c["primary"])


# --- the consent page, played as a browser would -------------------------------------------


class _ConsentForm(html.parser.HTMLParser):
    """The action and hidden fields of the consent form (id="consent") of either provider."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form" and attributes.get("id") == "consent":
            self._inside, self.action = True, attributes.get("action", "")
        elif self._inside and tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def consent(provider: str, auth_url: str, email: str) -> dict[str, str]:
    """Opens the sandbox's consent page, picks `email`, accepts; returns the callback's query."""
    page = requests.get(auth_url, timeout=10, allow_redirects=False)
    page.raise_for_status()
    form = _ConsentForm()
    form.feed(page.text)
    if not form.action:
        raise RuntimeError(f"No consent form on {provider}'s page ({page.status_code}).")
    button = {"decision": "allow"} if provider == "google" else {"action": "accept"}
    answer = requests.post(
        urljoin(auth_url, form.action),
        data={**form.fields, "account": email, **button},
        timeout=10,
        allow_redirects=False,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"{provider}'s consent page answered {answer.status_code}.")
    return dict(parse_qsl(urlsplit(answer.headers["Location"]).query))


def connect(user: Any, provider: str) -> Any:
    from calendars.services import integration_connect_finish, integration_connect_start

    url = integration_connect_start(
        user=user, provider_name=provider, redirect_uri=REDIRECT.format(provider)
    )
    params = consent(provider, url, ACCOUNTS[provider])
    return integration_connect_finish(user=user, provider_name=provider, params=params)


# --- measuring -----------------------------------------------------------------------------


class QueryCounter:
    """Counts the statements Django sends (connection.execute_wrapper), by leading verb."""

    def __init__(self) -> None:
        self.verbs: Counter[str] = Counter()

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                 context: Any) -> Any:  # fmt: skip
        self.verbs[(sql.lstrip().split(None, 1) or ["?"])[0].upper()] += 1
        return execute(sql, params, many, context)


@contextlib.contextmanager
def phase_timer(provider_name: str) -> Iterator[dict[str, float]]:
    """Time spent listing (HTTP, JSON, normalizing: provider.list_events), applying pages
    (sync._apply: the page's queries) and getting access tokens
    (services.integration_access_token), by wrapping the three for the run only."""
    from calendars import services, sync
    from calendars.providers import get_provider

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

    original_apply, original_token = sync._apply, services.integration_access_token
    provider.list_events = timed("fetch", provider.list_events)  # type: ignore[method-assign]
    sync._apply = timed("apply", original_apply)
    services.integration_access_token = timed("token", original_token)
    try:
        yield spent
    finally:
        del provider.list_events  # the class's method again
        sync._apply = original_apply
        services.integration_access_token = original_token


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


def import_once(sandbox: SandboxProcess, calendar_pk: int, provider: str, *,
                trace_memory: bool = False) -> Run:  # fmt: skip
    """One calendar_import of the calendar, loaded as integration_import loads it."""
    from django.db import connection

    from calendars.models import Calendar
    from calendars.sync import calendar_import

    calendar = Calendar.objects.select_related("integration").get(pk=calendar_pk)
    before = sandbox.counters()
    counter = QueryCounter()
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
    requests_made = sandbox.counters() - before
    requests_made = Counter(
        {k: v for k, v in requests_made.items() if not k.startswith("sandbox.")}
    )
    list_requests = requests_made.pop(LIST_ENDPOINT[provider], 0)
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

    @property
    def full_median(self) -> Run:
        return sorted(self.full, key=lambda r: r.seconds)[(len(self.full) - 1) // 2]

    @property
    def incremental_median(self) -> Run:
        return sorted(self.incremental, key=lambda r: r.seconds)[(len(self.incremental) - 1) // 2]


def bench_size(sandbox: SandboxProcess, size: int, repeat: int) -> list[ProviderFigures]:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username=f"bench-{size}-{secrets.token_hex(4)}")
    figures = []
    try:
        for provider in ("google", "outlook"):
            integration = connect(user, provider)
            calendar = integration.calendars.filter(is_primary=True).first()
            if calendar is None:  # connected, but listing the calendars failed
                raise RuntimeError(f"{TITLES[provider]}: no primary calendar after connecting.")
            progress(f"  {TITLES[provider]}: full import under tracemalloc")
            memory = import_once(sandbox, calendar.pk, provider, trace_memory=True)
            item = ProviderFigures(
                provider, size, sandbox.primary_entries(ACCOUNTS[provider]), memory
            )
            for attempt in range(repeat):
                forget_events(calendar.pk)
                progress(f"  {TITLES[provider]}: full import {attempt + 1}/{repeat}")
                item.full.append(import_once(sandbox, calendar.pk, provider))
            for attempt in range(repeat):
                progress(f"  {TITLES[provider]}: incremental import {attempt + 1}/{repeat}")
                item.incremental.append(import_once(sandbox, calendar.pk, provider))
            progress(f"  {TITLES[provider]}: re-import after the sync token is refused")
            sandbox.invalidate_sync(ACCOUNTS[provider])
            item.reimport = import_once(sandbox, calendar.pk, provider)
            figures.append(item)
    finally:
        user.delete()
    return figures


# --- report --------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def list_limit(provider: str, size: int) -> int:
    from calendars.providers import google, outlook

    page = google.EVENTS_PAGE_SIZE if provider == "google" else outlook.EVENTS_PAGE_SIZE
    return math.ceil(size / page)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join((f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}") for i, w in enumerate(widths))
    out = [line.format(*headers), "  ".join("-" * w for w in widths)]
    out += [line.format(*row) for row in rows]
    return "\n".join("  " + r for r in out)


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
    print(table(["events", "provider", "created", "skipped", "seconds", "events/s",
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
    print(table(["events", "provider", "ms", "list req", "other req", "queries", "writes",
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
    print(table(["events", "provider", "seconds", "list req", "queries", "writes",
                 "created/updated/deleted"], rows))  # fmt: skip
    print("  list req counts the refused incremental request too.")

    print("\nTargets (issue 5, 'Speed')")
    checks: list[tuple[str, str, bool]] = []
    for f in figures:
        run, name = f.full_median, f"{TITLES[f.provider]}, {f.size:,} events"
        limit = list_limit(f.provider, f.size)
        unit = "list requests" if f.provider == "google" else "pages"
        checks.append((f"{name}: full import in <= {limit} {unit}", str(run.list_requests),
                       run.list_requests <= limit))  # fmt: skip
        checks.append((f"{name}: >= {TARGET_RATE:,} events/s end to end", f"{run.rate:,.0f}",
                       run.rate >= TARGET_RATE))  # fmt: skip
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
    width = max(len(label) for label, _, _ in checks)
    for label, value, ok in checks:
        print(f"  {verdict(ok):<6}  {label:<{width}}  {value}")
    missed = sum(not ok for _, _, ok in checks)
    print(f"\n{len(checks) - missed} of {len(checks)} targets met" +
          (f", {missed} MISSED" if missed else "") + ".")  # fmt: skip


# --- main ----------------------------------------------------------------------------------


def configure_django(*, http_port: int, tls_port: int, state_dir: Path, scratch: Path) -> str:
    """Environment as CALENDAR_SANDBOX=true with our ports, then django.setup() and migrate.
    Returns a description of the database."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["CALENDAR_SANDBOX"] = "true"
    os.environ["CALENDAR_SANDBOX_URL"] = f"http://{HOST}:{http_port}"
    os.environ["CALENDAR_SANDBOX_TLS_URL"] = f"https://{HOST}:{tls_port}"
    os.environ["CALENDAR_SANDBOX_STATE_DIR"] = str(state_dir)
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    for name in ENDPOINT_VARIABLES:  # empty: the sandbox's value (and .env cannot fill them)
        os.environ[name] = ""
    given = bool(os.environ.get("DATABASE_URL"))
    if not given:
        os.environ["DATABASE_URL"] = f"sqlite:///{scratch / 'bench.sqlite3'}"

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    # As in production: with DEBUG on, Django keeps every query's SQL in memory.
    settings.DEBUG = False
    # The re-import after a 410 logs one expected line per calendar; the tables say it.
    logging.getLogger("calendars.sync").setLevel(logging.WARNING)
    call_command("migrate", interactive=False, verbosity=0)
    name = settings.DATABASES["default"]["NAME"]
    if given:
        return f"{connection.vendor} ({name}, from DATABASE_URL)"
    return f"{connection.vendor} (temporary file {name})"


def forget_ca_bundle() -> None:
    """core.tls writes the usual authorities plus the sandbox's into a file of the temporary
    directory; this run's sandbox authority dies with it, so does that file."""
    from core.tls import outlook_verify

    with contextlib.suppress(OSError):
        bundle = outlook_verify()
        if isinstance(bundle, str) and Path(bundle).parent == Path(tempfile.gettempdir()):
            Path(bundle).unlink(missing_ok=True)


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
    # A plain SIGTERM would skip the `finally` blocks that stop the sandbox.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="import-bench-") as scratch_name:
        scratch = Path(scratch_name)
        state_dir = scratch / "sandbox"
        http_port, tls_port = free_ports(2)
        database = configure_django(
            http_port=http_port, tls_port=tls_port, state_dir=state_dir, scratch=scratch
        )
        import django
        from django.conf import settings
        from django.db import connections

        print("Import benchmark (benchmarks/import_benchmark.py)")
        print(f"  Python {platform.python_version()}, Django {django.get_version()}, "
              f"{os.cpu_count()} CPUs, {platform.platform()}")  # fmt: skip
        print(f"  database: {database}")
        print(f"  import window: {settings.CALENDAR_IMPORT_DAYS_BACK} days back, "
              f"{settings.CALENDAR_IMPORT_DAYS_AHEAD} ahead; sizes: "
              f"{', '.join(f'{s:,}' for s in sizes)}; repeat: {args.repeat}")  # fmt: skip
        figures: list[ProviderFigures] = []
        try:
            for size in sizes:
                progress(f"Sandbox with {size:,} events per primary calendar...")
                with SandboxProcess(
                    events=size,
                    port=http_port,
                    tls_port=tls_port,
                    state_dir=state_dir,
                    log=scratch / f"sandbox-{size}.log",
                ) as sandbox:
                    progress(f"  ready in {sandbox.ready_seconds:.1f} s (pid {sandbox.pid}, "
                             f"{sandbox.http_url})")  # fmt: skip
                    figures += bench_size(sandbox, size, args.repeat)
        finally:
            connections.close_all()
            forget_ca_bundle()
        report(figures, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
