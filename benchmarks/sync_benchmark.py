"""How fast Celery workers sync many integrations when nothing changed, and what each costs.

Runs the provider sandbox in its own process, with as many accounts as integrations (half
Google, half Outlook; each primary calendar holds --events entries), on PostgreSQL (a database
of its own, created and migrated here, dropped at the end) and a Redis broker (a database
number of its own, flushed). It makes one learner per account, enrolled in a few formations,
connects each through the real consent flow (in a thread pool), then starts --workers real
worker processes (`python -m celery -A config worker --concurrency 1`, each its own process;
`--concurrency N` for N tasks at a time in each)
and runs three rounds, each started as beat starts one: every integration made due, then
`calendars.tasks.sync_due` (with its spread set to 0 so that the round is not stretched on
purpose):

- the first sync of every integration (a full import of its primary calendar, the export of
  its formations);
- the second, whose incremental listing holds the events the first one exported;
- the measured round: nothing changed anywhere, every integration synced once.

For each: integrations per second (from sending to the last SyncRun finished), the requests
the sandbox counted (per integration, by endpoint), the SQL statements each task sent (counted
inside the workers by benchmarks/worker_probe.py) and the SyncRuns' outcome. Then it runs the
same unchanged sync in this process on a sample, under CaptureQueriesContext, to show which
statements they are. It prints the figures next to their targets and exits 0 even when one is
missed: it is a measurement, not a test. See benchmarks/README.md.

    python benchmarks/sync_benchmark.py [--integrations 1000] [--events 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import harness

DEFAULT_DATABASE_URL = "postgres://calendar:calendar@127.0.0.1:5432/calendar_bench_sync"
DEFAULT_BROKER = "redis://127.0.0.1:6379/12"
QUEUE = "sync-bench"
PROBE_KEY = "sync-bench-probe"
NOOP_TASK = "sync_bench.noop"  # defined in worker_probe.py, which the workers load
SANDBOX_PROVIDER = {"google": "google", "outlook": "microsoft"}
DOMAIN = {"google": "gmail.test", "outlook": "contoso.test"}
FORMATIONS = 20  # in the catalogue; each learner is enrolled in --enrolments of them
# The second sync lists the events the first one exported (one incremental request, as
# always, with a few items to recognise as ours); the third is the steady state measured.
ROUNDS = [
    ("first sync", "first sync of every integration (full import, export)"),
    ("second sync", "second sync (lists the formations the first exported)"),
]
# Issue "Speed near the floor": an unchanged sync sends at most this many statements...
TARGET_STATEMENTS = 10
# ...and its rate is at least this share of a no-op task's on the same workers.
TARGET_NOOP_SHARE = 0.3


# --- the sandbox, with one account per integration -----------------------------------------


def account_email(provider: str, index: int) -> str:
    return f"learner{index:05d}@{DOMAIN[provider]}"


def serve_sandbox(args: argparse.Namespace) -> int:
    """The sandbox process (`--serve-sandbox`): `manage.py calendar_sandbox` knows six accounts;
    this one has `--google` + `--outlook` of them, made as its generator makes its own (a
    primary calendar of `--events` entries, a team calendar, a read-only holidays one)."""
    import random
    import uuid
    from datetime import UTC, datetime

    from sandbox import store as sandbox_store
    from sandbox.core import Options, Sandbox

    started = time.perf_counter()
    sandbox = Sandbox(
        Options(seed=1, events=args.events, state_dir=args.state_dir), generate_data=False
    )
    # Deterministic data, as the sandbox's own generator makes it.
    store, today = sandbox.store, datetime.now(UTC).date()
    rng = random.Random(1)  # noqa: S311 (test data, not a secret)
    for provider, count in (("google", args.google), ("outlook", args.outlook)):
        google = provider == "google"
        for index in range(count):
            email = account_email(provider, index)
            account = store.add_account(
                sandbox_store.Account(
                    provider=SANDBOX_PROVIDER[provider],
                    email=email,
                    name=f"Learner {index}",
                    uid=str(rng.randrange(10**20, 10**21))
                    if google
                    else str(uuid.UUID(int=rng.getrandbits(128))),
                    tenant_id="" if google else sandbox_store.CONTOSO_TENANT_ID,
                )
            )

            def new_id(google: bool = google) -> str:
                maker = sandbox_store.new_google_id if google else sandbox_store.new_graph_id
                return maker(rng)

            zone = sandbox_store.LOCAL_ZONE
            calendars = [
                sandbox_store.Calendar(email if google else new_id(), "Agenda", True, True, zone,
                                       "#0b5cad"),
                sandbox_store.Calendar(new_id(), "Équipe projet", False, True, zone, "#2e7d32"),
                sandbox_store.Calendar(new_id(), "Jours fériés", False, False, zone, "#a1261c"),
            ]  # fmt: skip
            for calendar in calendars:
                account.calendars[calendar.id] = calendar
            sandbox_store._fill(store, account, calendars[0], rng, new_id, args.events, today)
            sandbox_store._fill(store, account, calendars[1], rng, new_id, 5, today)
            sandbox_store._fill_holidays(store, account, calendars[2], rng, new_id, today)
    sandbox.start(harness.HOST, args.port, args.tls_port)
    print(f"Sandbox with {len(store.accounts)} accounts ready in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    sandbox.stop()
    return 0


def sandbox_command(bench: harness.Bench, *, google: int, outlook: int, events: int) -> list[str]:
    """This script again, as the sandbox process (`serve_sandbox`)."""
    return [
        sys.executable, str(Path(__file__).resolve()), "--serve-sandbox",
        f"--port={bench.http_port}", f"--tls-port={bench.tls_port}", f"--events={events}",
        f"--google={google}", f"--outlook={outlook}", f"--state-dir={bench.state_dir}",
    ]  # fmt: skip


# --- Redis broker, workers -----------------------------------------------------------------


class Workers:
    """`--workers` Celery worker processes, each `--concurrency` tasks at a time (prefork),
    with the query probe."""

    def __init__(self, count: int, *, concurrency: int = 1, log_dir: Path) -> None:
        self.count = count
        self.concurrency = concurrency
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.names = [f"bench{n + 1}@{platform.node()}" for n in range(count)]

    def __enter__(self) -> Workers:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(harness.ROOT / "benchmarks"), str(harness.ROOT), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        try:
            for name in self.names:
                log = (self.log_dir / f"{name.split('@')[0]}.log").open("wb")
                self.processes.append(
                    subprocess.Popen(  # noqa: S603 (our interpreter, our arguments)
                        [sys.executable, "-m", "celery", "-A", "config", "worker",
                         "--concurrency", str(self.concurrency), "--hostname", name,
                         "--queues", QUEUE,
                         "--include", "worker_probe", "--without-gossip", "--without-mingle",
                         "--loglevel", "WARNING"],
                        cwd=harness.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
            self._wait_until_ready(timeout=60)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_until_ready(self, timeout: float) -> None:
        from config.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            answers = app.control.ping(destination=self.names, timeout=1.0)
            if {name for answer in answers for name in answer} >= set(self.names):
                return
        raise RuntimeError(f"The workers did not answer within {timeout:.0f} s:\n{self.tail()}")

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"A worker exited ({process.returncode}):\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(
            f"{path.name}: {line}"
            for path in sorted(self.log_dir.glob("bench*.log"))
            for line in harness.log_tail(path, 10).splitlines()
        )

    def stop(self) -> None:
        harness.stop_processes(self.processes, timeout=30)  # SIGTERM: a warm shutdown


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


@contextlib.contextmanager
def flushed(broker: Any) -> Iterator[None]:
    """The broker's database emptied now and at the end."""
    broker.flushdb()
    try:
        yield
    finally:
        broker.flushdb()


# --- setting up learners -------------------------------------------------------------------


def make_learners(count: int, enrolments: int) -> list[tuple[int, str, str]]:
    """`count` learners (with a profile), each enrolled in `enrolments` of the FORMATIONS
    future formations; returns (user id, provider, sandbox e-mail) for each, half Google, half
    Outlook. bulk_create sends no signal: nothing is exported yet."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from accounts.models import Profile
    from formations.models import Enrollment

    user_model = get_user_model()
    unusable = make_password(None)
    users = user_model.objects.bulk_create(
        user_model(username=f"sync-bench-{n:05d}", password=unusable) for n in range(count)
    )
    Profile.objects.bulk_create(Profile(user=user) for user in users)
    start = (timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    formations = harness.formations_create(
        (start + timedelta(days=n, hours=1) for n in range(FORMATIONS)), duration=timedelta(hours=3)
    )
    Enrollment.objects.bulk_create(
        Enrollment(learner=user, formation=formations[(n + k) % FORMATIONS])
        for n, user in enumerate(users)
        for k in range(min(enrolments, FORMATIONS))
    )
    google = (count + 1) // 2
    return [
        (user.pk, "google", account_email("google", n))
        if n < google
        else (user.pk, "outlook", account_email("outlook", n - google))
        for n, user in enumerate(users)
    ]


def connect_all(learners: list[tuple[int, str, str]], threads: int) -> float:
    """Connects every learner's account through the consent flow, `threads` at a time."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from core.tls import outlook_verify

    users = get_user_model().objects.in_bulk([pk for pk, _, _ in learners])
    # Writes the certificate authorities' bundle once, before the threads start.
    outlook_verify()
    done = Counter[str]()
    lock = threading.Lock()

    def one(item: tuple[int, str, str]) -> None:
        pk, provider, email = item
        try:
            harness.connect(users[pk], provider, email=email)
        finally:
            connection.close()
        with lock:
            done["connected"] += 1
            if done["connected"] % 200 == 0:
                harness.progress(f"  {done['connected']:,} connected")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, learners))
    return time.perf_counter() - started


# --- a round -------------------------------------------------------------------------------


@dataclass
class Round:
    label: str
    integrations: int
    seconds: float = 0.0
    send_seconds: float = 0.0
    finished: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    recorded_requests: int = 0  # what the SyncRuns say they sent
    task_queries: list[int] = field(default_factory=list)
    task_seconds: list[float] = field(default_factory=list)
    run_seconds: list[float] = field(default_factory=list)
    imported_calendars: int = 0

    @property
    def rate(self) -> float:
        return self.finished / self.seconds if self.seconds else 0.0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def list_requests(self) -> int:
        return sum(self.requests[name] for name in harness.LIST_ENDPOINT.values())


def sync_round(sandbox: harness.SandboxProcess, workers: Workers, broker: Any, *, label: str,
               timeout: float) -> Round:  # fmt: skip
    """Makes every integration due, runs beat's `sync_due` once here (it sends one task per
    integration to the workers), and waits for the last SyncRun to finish."""
    from django.db.models import Count, Max, Min, Q, Sum
    from django.utils import timezone

    from calendars import tasks
    from calendars.models import Calendar, CalendarIntegration, SyncRun

    integrations = CalendarIntegration.objects.count()
    figures = Round(label, integrations)
    figures.imported_calendars = Calendar.objects.filter(import_enabled=True).count()
    CalendarIntegration.objects.update(next_sync_at=timezone.now() - timedelta(seconds=1))
    for key in broker.scan_iter(f"{PROBE_KEY}:*"):
        broker.delete(key)
    sandbox.reset_counters()
    tasks.DUE_SPREAD = 0.0  # beat spreads a round over 50 s; here every task goes at once
    since = timezone.now()
    started = time.perf_counter()
    sent = 0
    while sent < integrations:
        batch = tasks.sync_due()
        if not batch:
            break
        sent += batch
    figures.send_seconds = time.perf_counter() - started
    if sent < integrations:
        raise RuntimeError(f"sync_due sent {sent} of {integrations} integrations.")
    runs = SyncRun.objects.filter(started_at__gte=since)
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while True:
        finished = runs.filter(finished_at__isnull=False).count()
        if finished >= integrations:
            break
        if time.monotonic() > deadline:
            harness.progress(f"  timed out with {finished:,} of {integrations:,} finished")
            break
        workers.check_alive()
        if time.monotonic() - last_report > 15:
            harness.progress(f"  {finished:,} of {integrations:,} finished")
            last_report = time.monotonic()
        time.sleep(0.2)
    summary = runs.filter(finished_at__isnull=False).aggregate(
        n=Count("pk"), failed=Count("pk", filter=~Q(error="")), first=Min("started_at"),
        last=Max("finished_at"), created=Sum("created"), updated=Sum("updated"),
        deleted=Sum("deleted"), requests=Sum("requests"),
    )  # fmt: skip
    figures.finished, figures.failed = summary["n"], summary["failed"]
    figures.seconds = (summary["last"] - since).total_seconds() if summary["last"] else 0.0
    figures.changes = Counter(
        {k: summary[k] or 0 for k in ("created", "updated", "deleted")}
    )  # fmt: skip
    figures.recorded_requests = summary["requests"] or 0
    figures.errors = Counter(runs.exclude(error="").values_list("error", flat=True))
    figures.run_seconds = [
        (end - begin).total_seconds()
        for begin, end in runs.filter(finished_at__isnull=False).values_list(
            "started_at", "finished_at"
        )
    ]
    figures.requests = sandbox.provider_requests()
    name = tasks.sync_integration.name
    figures.task_queries = [int(v) for v in broker.lrange(f"{PROBE_KEY}:{name}:queries", 0, -1)]
    figures.task_seconds = [float(v) for v in broker.lrange(f"{PROBE_KEY}:{name}:seconds", 0, -1)]
    return figures


def noop_round(workers: Workers, broker: Any, *, count: int, timeout: float) -> Round:
    """The baseline, in the same run: `count` no-op tasks sent one by one to the same
    workers, timed as a sync round is, from the first send to the last task's end."""
    from config.celery import app

    figures = Round("no-op tasks", count)
    for key in broker.scan_iter(f"{PROBE_KEY}:*"):
        broker.delete(key)
    ended_key = f"{PROBE_KEY}:{NOOP_TASK}:ended"
    since = time.time()
    started = time.perf_counter()
    for _ in range(count):
        app.send_task(NOOP_TASK, queue=QUEUE)
    figures.send_seconds = time.perf_counter() - started
    deadline = time.monotonic() + timeout
    while broker.llen(ended_key) < count and time.monotonic() < deadline:
        workers.check_alive()
        time.sleep(0.1)
    ended = [float(v) for v in broker.lrange(ended_key, 0, -1)]
    figures.finished = len(ended)
    figures.seconds = max(ended) - since if ended else 0.0
    seconds_key = f"{PROBE_KEY}:{NOOP_TASK}:seconds"
    figures.task_seconds = [float(v) for v in broker.lrange(seconds_key, 0, -1)]
    return figures


# --- the in-process sample -----------------------------------------------------------------

_LITERALS = [
    (re.compile(r"'(?:[^']|'')*'"), "?"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "?"),
    (re.compile(r"\((?:\?, )+\?\)"), "(...)"),
]


def shape(sql: str) -> str:
    """The statement with its literals replaced, so that repeats group together."""
    for pattern, replacement in _LITERALS:
        sql = pattern.sub(replacement, sql)
    return re.sub(r"\s+", " ", sql).strip()


@dataclass
class Sample:
    integrations: int = 0
    queries: list[int] = field(default_factory=list)
    shapes: Counter[str] = field(default_factory=Counter)
    transactions: int = 0  # BEGIN and COMMIT lines
    requests: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    # Where each task body's time went: waiting for the database (each statement's execute),
    # for the provider (the listing call, the client library's work included), the rest.
    database_seconds: list[float] = field(default_factory=list)
    provider_seconds: list[float] = field(default_factory=list)


def sampled_integrations(size: int) -> list[int]:
    """The first `size` integrations of each provider."""
    from calendars.models import CalendarIntegration

    ids: list[int] = []
    for provider in ("google", "outlook"):
        ids += list(
            CalendarIntegration.objects.filter(provider=provider)
            .order_by("pk")
            .values_list("pk", flat=True)[:size]
        )
    return ids


def sample_in_process(sandbox: harness.SandboxProcess, size: int) -> Sample:
    """The task body (`sync_integration`, as a worker runs it after `sync_due` marked the
    integration) here, under CaptureQueriesContext, for `size` integrations of each
    provider; nothing changed since the round."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from calendars.models import SyncRun
    from calendars.providers import get_provider
    from calendars.sync.runs import integration_sync_request
    from calendars.tasks import sync_integration

    ids = sampled_integrations(size)
    sample = Sample(integrations=len(ids))
    sandbox.reset_counters()
    spent = {"database": 0.0, "provider": 0.0}

    def timed_statement(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent["database"] += time.perf_counter() - started

    clients = [get_provider(name).calendars for name in ("google", "outlook")]
    for client in clients:
        client.list_events = _timed(client.list_events, spent)  # type: ignore[method-assign]
    try:
        for pk in ids:
            integration_sync_request(integration_id=pk)
            spent.update(database=0.0, provider=0.0)
            with (
                CaptureQueriesContext(connection) as captured,
                connection.execute_wrapper(timed_statement),
            ):
                started = time.perf_counter()
                sync_integration(pk, SyncRun.Trigger.PERIODIC, requested=True)
                sample.seconds.append(time.perf_counter() - started)
            sample.database_seconds.append(spent["database"])
            sample.provider_seconds.append(spent["provider"])
            # Django logs BEGIN and COMMIT too; the workers' count has no such line.
            statements = harness.statements(captured)
            sample.queries.append(len(statements))
            sample.transactions += len(captured) - len(statements)
            sample.shapes.update(shape(sql) for sql in statements)
    finally:
        for client in clients:
            del client.list_events  # the class's method again
    sample.requests = sandbox.provider_requests()
    return sample


def _timed(function: Any, spent: dict[str, float]) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent["provider"] += time.perf_counter() - started

    return timed


def profile_in_process(size: int, *, repeat: int = 5) -> str:
    """Where an unchanged sync's time goes in this process: the task body of `size`
    integrations of each provider, `repeat` times each, under cProfile; the functions that
    took the most time of their own, and the most time in all."""
    import cProfile
    import io
    import pstats

    from calendars.models import SyncRun
    from calendars.sync.runs import integration_sync_request
    from calendars.tasks import sync_integration

    ids = sampled_integrations(size)
    profile = cProfile.Profile()
    for _ in range(repeat):
        for pk in ids:
            integration_sync_request(integration_id=pk)
            profile.enable()
            sync_integration(pk, SyncRun.Trigger.PERIODIC, requested=True)
            profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    out.write(f"{len(ids) * repeat} task bodies\n")
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return out.getvalue()


# --- report --------------------------------------------------------------------------------


def report(rounds: list[Round], baselines: list[Round], sample: Sample, *, interval: int,
           connect_seconds: float, integrations: int) -> None:  # fmt: skip
    print(f"\nSetup: {integrations:,} integrations connected through the consent flow in "
          f"{connect_seconds:.1f} s ({integrations / connect_seconds:.0f}/s)")  # fmt: skip

    print("\nRounds: every integration due, sync_due sends one task each, the workers sync")
    rows = []
    for r in rounds:
        n = max(r.finished, 1)
        rows.append([
            r.label, f"{r.finished:,}/{r.integrations:,}", str(r.failed), f"{r.seconds:.1f}",
            f"{r.rate:.1f}", f"{r.total_requests / n:.2f}", f"{r.list_requests / n:.2f}",
            f"{r.recorded_requests / n:.2f}",
            f"{harness.median(r.task_queries):.0f}" if r.task_queries else "-",
            f"{max(r.task_queries)}" if r.task_queries else "-",
            f"{harness.median(r.task_seconds) * 1000:.0f}" if r.task_seconds else "-",
            f"{harness.median(r.run_seconds) * 1000:.0f}",
            f"{harness.percentile(r.run_seconds, 0.99) * 1000:.0f}",
            "{created}/{updated}/{deleted}".format(**r.changes),
        ])  # fmt: skip
    print(harness.table(["round", "synced", "failed", "wall s", "integr./s", "req/integr.",
                         "list req/integr.", "recorded req/integr.", "queries/task (median)",
                         "max", "task ms (median)", "run ms (median)", "p99",
                         "created/updated/deleted"],
                        rows))  # fmt: skip
    print(
        "  wall s: from sync_due's first send to the last SyncRun's finished_at.\n"
        "  req/integr.: every request the sandbox counted (token, discovery, batches...);\n"
        "  list req: google.events.list + graph.delta; recorded: SyncRun.requests (what\n"
        "  the sync counts itself). queries/task: statements each sync_integration task\n"
        "  sent, counted inside the workers; task ms: its duration there (connecting to\n"
        "  the database included). run ms: SyncRun finished_at - started_at."
    )
    for r in rounds:
        endpoints = ", ".join(f"{k} {v:,}" for k, v in sorted(r.requests.items()))
        print(f"  {r.label}, requests by endpoint: {endpoints or 'none'}")
        if r.send_seconds:
            print(f"  {r.label}: sync_due took {r.send_seconds:.1f} s to send the tasks")
        for error, count in r.errors.most_common(3):
            print(f"  {r.label}: {count} runs failed: {error[:150]}")

    if sample.integrations:
        n = sample.integrations
        print(f"\nThe unchanged sync in this process, {n} integrations "
              f"(CaptureQueriesContext around the task body)")  # fmt: skip
        print(f"  statements per integration: median {harness.median(sample.queries):.0f}, "
              f"min {min(sample.queries)}, max {max(sample.queries)} (and "
              f"{sample.transactions / n:.0f} BEGIN/COMMIT lines); "
              f"{harness.median(sample.seconds) * 1000:.0f} ms median")  # fmt: skip
        database = harness.median(sample.database_seconds) * 1000
        provider = harness.median(sample.provider_seconds) * 1000
        whole = harness.median(sample.seconds) * 1000
        print(f"  time per task body (medians): {whole:.1f} ms; waiting for the database "
              f"{database:.1f} ms (the statements' execute), the provider's listing "
              f"{provider:.1f} ms (request, answer, client library, normalising), "
              f"the rest {max(whole - database - provider, 0):.1f} ms (building queries, "
              "the run's own work)")  # fmt: skip
        endpoints = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(sample.requests.items()))
        print(f"  requests per integration by endpoint: {endpoints or 'none'}")
        print("  statements, by shape (per integration):")
        for text, count in sample.shapes.most_common():
            print(f"    {count / n:5.2f}  {text[:150]}")

    unchanged = [r for r in rounds if r.label.startswith("unchanged")]
    print("\nThe unchanged sync against the baseline: as many no-op tasks on the same workers,")
    print("  just before (sent one by one; wall s from the first send to the last task's end)")
    rows, shares = [], []
    for number, (base, measured) in enumerate(zip(baselines, unchanged, strict=False), 1):
        share = measured.rate / base.rate if base.rate else 0.0
        shares.append(share)
        rows.append([
            str(number), f"{base.finished:,}", f"{base.seconds:.1f}", f"{base.rate:.1f}",
            f"{harness.median(base.task_seconds) * 1000:.1f}" if base.task_seconds else "-",
            f"{measured.seconds:.1f}", f"{measured.rate:.1f}", f"{share:.2f}",
        ])  # fmt: skip
    print(harness.table(["repeat", "no-op tasks", "wall s", "tasks/s", "task ms (median)",
                         "unchanged wall s", "integr./s", "share of no-op rate"],
                        rows))  # fmt: skip
    share = harness.median(shares) if shares else 0.0
    spread = f"{min(shares):.2f}-{max(shares):.2f}" if shares else "-"
    print(f"  share of the no-op rate: median {share:.2f}, spread {spread} "
          f"over {len(shares)} repeat(s)")  # fmt: skip

    measured = harness.middle(unchanged, key=lambda r: r.rate) if unchanged else rounds[-1]
    n = max(measured.finished, 1)
    needed = integrations / interval
    statements = [q for r in unchanged for q in r.task_queries]
    checks = [
        ("every integration synced, none failed (every unchanged round)",
         f"{sum(r.finished - r.failed for r in unchanged):,}/"
         f"{sum(r.integrations for r in unchanged):,}",
         all(r.finished == r.integrations and not r.failed for r in unchanged)),
        (f"keeps up: >= {needed:.2f} integrations/s ({integrations:,} every "
         f"CALENDAR_SYNC_INTERVAL = {interval} s), median round",
         f"{measured.rate:.1f}/s", measured.rate >= needed),
        (f"requests per integration <= 1 per imported calendar "
         f"({measured.imported_calendars / n:.2f})", f"{measured.total_requests / n:.2f}",
         all(r.total_requests <= r.imported_calendars for r in unchanged)),
        ("no change written (created/updated/deleted = 0)",
         "{created}/{updated}/{deleted}".format(**measured.changes),
         not any(sum(r.changes.values()) for r in unchanged)),
        (f"SQL statements per unchanged sync <= {TARGET_STATEMENTS}, the same for every one "
         "(counted in the workers)",
         f"{min(statements)}-{max(statements)}" if statements else "-",
         bool(statements) and max(statements) <= TARGET_STATEMENTS
         and min(statements) == max(statements)),
        (f"rate >= {TARGET_NOOP_SHARE} of a no-op task's on the same workers (median of "
         f"{len(shares)}, spread {spread})", f"{share:.2f}", share >= TARGET_NOOP_SHARE),
    ]  # fmt: skip
    print("\nTargets (issues 'Scale' and 'Speed near the floor')")
    harness.print_checks(checks)
    harness.print_tally(checks)


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--integrations", type=int, default=1000,
                        help="Learners, each with one integration: half Google, half Outlook "
                        "(default 1000).")  # fmt: skip
    parser.add_argument(
        "--events",
        type=int,
        default=200,
        help="Entries in each account's primary calendar (default 200).",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="Celery worker processes (default 2).",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="Tasks each worker runs at a time, in as many child processes (default 1); the "
        "no-op baseline runs on the same workers.",
    )
    parser.add_argument("--enrolments", type=int, default=5,
                        help=f"Formations each learner is enrolled in, of {FORMATIONS} "
                        "(default 5).")  # fmt: skip
    parser.add_argument("--sample", type=int, default=10,
                        help="Integrations of each provider synced in this process under "
                        "CaptureQueriesContext (default 10; 0 to skip).")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3,
                        help="Unchanged rounds measured, each after a round of as many no-op "
                        "tasks (default 3).")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="Also profile the unchanged sync's task body in this process "
                        "(cProfile; --sample integrations of each provider, 5 times).")  # fmt: skip
    parser.add_argument("--connect-threads", type=int, default=8)
    parser.add_argument(
        "--timeout", type=float, default=1800, help="Seconds a round may take (default 1800)."
    )
    harness.add_scratch_database_arguments(
        parser, default=DEFAULT_DATABASE_URL, variable="BENCH_DATABASE_URL"
    )
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER),
                        help="A Redis database of its own, flushed (default $BENCH_BROKER_URL "
                        f"or {DEFAULT_BROKER}).")  # fmt: skip
    # The sandbox process runs this script again with these.
    parser.add_argument("--serve-sandbox", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--google", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--outlook", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tls-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_sandbox:
        return serve_sandbox(args)
    if args.integrations < 2 or min(args.events, args.workers, args.repeat, args.concurrency) < 1:
        parser.error(
            "--integrations must be at least 2, --events, --workers, --concurrency and "
            "--repeat at least 1"
        )
    problem = harness.check_scratch_database(args.database_url)
    if problem:
        parser.error(problem)
    harness.exit_on_sigterm()

    # The workers inherit this environment: production settings (DEBUG off), the scratch
    # database, the broker, the sandbox (set by configure_django), no push channels (opening
    # them is not part of an unchanged sync).
    harness.use_production_settings(
        args.database_url,
        CELERY_BROKER_URL=args.broker,
        CELERY_QUEUE=QUEUE,
        SYNC_BENCH_PROBE_KEY=PROBE_KEY,
    )
    broker = redis_client(args.broker)
    google = (args.integrations + 1) // 2
    outlook = args.integrations - google

    rounds: list[Round] = []
    baselines: list[Round] = []
    profiled = ""
    sample = Sample()
    connect_seconds = 0.0
    with (
        flushed(broker),
        harness.scratch_database(args.database_url, keep=args.keep_database),
        harness.bench("sync-bench-") as bench,
    ):
        from django.conf import settings

        harness.print_heading("Sync benchmark (benchmarks/sync_benchmark.py)")
        print(f"  database: {bench.database}; broker: {args.broker} (queue {QUEUE})")
        print(f"  {args.integrations:,} integrations ({google:,} Google, {outlook:,} Outlook), "
              f"{args.events} entries per primary calendar, {args.enrolments} formations per "
              f"learner; {args.workers} worker process(es), --concurrency {args.concurrency} each; "
              f"CONN_MAX_AGE={settings.DATABASES['default']['CONN_MAX_AGE']}")  # fmt: skip
        harness.progress(f"Sandbox with {args.integrations:,} accounts...")
        command = sandbox_command(bench, google=google, outlook=outlook, events=args.events)
        with bench.sandbox(command=command) as sandbox:
            harness.progress(f"  ready in {sandbox.ready_seconds:.1f} s (pid {sandbox.pid})")
            learners = make_learners(args.integrations, args.enrolments)
            harness.progress(f"Connecting {args.integrations:,} accounts...")
            connect_seconds = connect_all(learners, args.connect_threads)
            harness.progress(f"Starting {args.workers} workers...")
            with Workers(args.workers, concurrency=args.concurrency,
                         log_dir=bench.scratch) as workers:  # fmt: skip
                for label, title in ROUNDS:
                    harness.progress(f"Round: {title}...")
                    rounds.append(sync_round(sandbox, workers, broker, label=label,
                                             timeout=args.timeout))  # fmt: skip
                # Measured: the baseline and the unchanged sync, alternately.
                for repeat in range(1, args.repeat + 1):
                    harness.progress(f"Repeat {repeat}: {args.integrations:,} no-op tasks...")
                    baselines.append(noop_round(workers, broker, count=args.integrations,
                                                timeout=args.timeout))  # fmt: skip
                    harness.progress(f"Repeat {repeat}: nothing changed anywhere...")
                    rounds.append(sync_round(sandbox, workers, broker,
                                             label=f"unchanged #{repeat}",
                                             timeout=args.timeout))  # fmt: skip
            if args.sample:
                harness.progress(f"In-process sample of {args.sample} per provider...")
                sample = sample_in_process(sandbox, args.sample)
            if args.profile:
                harness.progress("Profiling the task body in this process...")
                profiled = profile_in_process(max(args.sample, 1))
    report(rounds, baselines, sample, interval=settings.CALENDAR_SYNC_INTERVAL,
           connect_seconds=connect_seconds, integrations=args.integrations)  # fmt: skip
    if profiled:
        print("\nProfile of the unchanged sync's task body in this process (cProfile)")
        print(profiled)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
