"""How fast the calendar page and the API's events list are under load, next to `/healthz`.

Prepares a learner with realistic data on PostgreSQL (a database of its own, created and
migrated here, dropped at the end): a Google and an Outlook account connected through the real
consent flow against the provider sandbox (run in its own process by benchmarks/harness) and
imported (--events entries in each primary calendar), and enrolment in --formations formations
over the coming weeks, exported by the same sync.
The sandbox is stopped before the load: no target calls a provider.

Then it serves the site with gunicorn (--gunicorn-workers sync workers, production settings:
DEBUG off, static files collected), once for each --conn-max-age value (gunicorn started again
with the next), and, from a second process, `wrk` loads for --duration seconds each of:

- `/healthz`, the baseline: the same server, middleware and wrk, no session, no query;
- the calendar page, `/calendar/` (this month), with the learner's session cookie;
- the API's events list, `/api/calendar-integration/events?start=...&end=...` (this month),
  with a personal API token;

one after the other, --repeat times. Each target's requests per second are divided by those
of `/healthz` in the same repeat: the machine's load moves both alike, so the ratio holds
where the raw figures do not. It reports, over the repeats, the median and spread of requests
per second and of the ratio, latency percentiles (wrk --latency) and errors: responses other
than 2xx (counted by a Lua script, so that a redirect to the login page counts) and socket
errors (connect, read, write, timeout). It also counts, in this process, the SQL statements
one request of each sends, and with --profile N profiles N requests of each in this process
(cProfile). Exits 0 even when a target is missed: it is a measurement, not a test. See
benchmarks/README.md.

    python benchmarks/load_benchmark.py [--duration 30] [--repeat 3] [--conn-max-age 0,60]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import harness
import requests

DEFAULT_DATABASE_URL = "postgres://calendar:calendar@127.0.0.1:5432/calendar_bench_load"
TARGET_ERRORS = 0
BASELINE = "/healthz"
# Requests per second as a fraction of /healthz's in the same repeat (issue "Speed near the
# floor").
TARGET_RATIOS = {"calendar page": 0.10, "API events": 0.25}
# Counts responses other than 2xx in every thread; wrk's own "Non-2xx or 3xx responses"
# lets redirects (to the login page, say) pass.
LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("non2xx") end
  io.write(string.format("NON2XX %d\\n", total))
end
"""


# --- the learner ---------------------------------------------------------------------------


@dataclass
class Learner:
    username: str
    session_cookie: str
    api_token: str
    imported_events: int
    formations: int
    exported: int


def make_learner(formations: int) -> Learner:
    """A learner enrolled in `formations` formations over the coming weeks, with a Google and
    an Outlook account connected, imported and their formations exported (one sync each)."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from accounts.models import Profile
    from accounts.services import api_token_create
    from calendars.models import CalendarEvent, FormationExport
    from calendars.sync.runs import integration_sync

    user = get_user_model().objects.create_user("load-learner", password=secrets.token_hex(16))
    Profile.objects.create(user=user)
    # From the start of this month, every other day or so: the month view shows most of them.
    first = timezone.localdate().replace(day=1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time())) + timedelta(hours=9)
    harness.formations_create(
        (start + timedelta(days=n * 3 // 2) for n in range(formations)),
        duration=timedelta(hours=3),
        learner=user,
    )
    for provider in ("google", "outlook"):
        integration = harness.connect(user, provider)
        integration_sync(integration=integration)
    client = Client()
    client.force_login(user)
    _row, token = api_token_create(user=user, name="load benchmark")
    return Learner(
        username=user.username,
        session_cookie=client.cookies["sessionid"].value,
        api_token=token,
        imported_events=CalendarEvent.objects.filter(calendar__integration__user=user).count(),
        formations=formations,
        exported=FormationExport.objects.filter(integration__user=user).count(),
    )


def statements_per_request(targets: list[Target]) -> dict[str, int]:
    """One request of each target, with its headers, through Django's test client, under
    CaptureQueriesContext (BEGIN/COMMIT markers left out)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST=harness.HOST)  # one of ALLOWED_HOSTS; the cookie is in the headers
    counts = {}
    for target in targets:
        client.get(target.path, headers=target.headers)  # warm caches (translations, URLs)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(target.path, headers=target.headers)
        if response.status_code != 200:
            raise RuntimeError(f"{target.path} answered {response.status_code} in-process.")
        counts[target.name] = len(harness.statements(captured))
    return counts


# Where a request's time goes, by the functions that enter each part (cumulative time).
PARTS = [
    ("templates (rendering)", "django/template/base.py", "render"),
    ("SQL (execute and fetch)", "django/db/models/sql/compiler.py", "execute_sql"),
    ("sessions (load)", "django/contrib/sessions/backends/db.py", "load"),
    ("ninja: parameters", "ninja/signature/details.py", "resolve"),
    ("ninja: authentication", "ninja/operation.py", "_run_authentication"),
    ("ninja: output (pydantic, JSON)", "ninja/operation.py", "_result_to_response"),
    ("the calendar's items (agenda_items)", "calendars/agenda.py", "agenda_items"),
    ("translations (gettext)", "django/utils/translation/trans_real.py", "gettext"),
    ("date formats (date_format, time_format)", "django/utils/dateformat.py", "format"),
]


def profile(targets: list[Target], *, requests_each: int, top: int = 25) -> None:
    """`requests_each` requests of each target through Django's test client in this process
    (production settings: DEBUG off), under cProfile: the whole request, handler and
    middleware included, not the WSGI server. Prints the time per request and the functions
    that took most of it, cumulative and own."""
    import time

    from django.test import Client

    client = Client(HTTP_HOST=harness.HOST)
    for target in targets:
        for _ in range(3):  # warm caches (templates, translations, URLs)
            client.get(target.path, headers=target.headers)
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(requests_each):
            client.get(target.path, headers=target.headers)
        profiler.disable()
        elapsed = time.perf_counter() - started
        print(f"\nProfile: {target.name} ({target.path}), {requests_each} requests in-process, "
              f"{elapsed * 1000 / requests_each:.1f} ms each (under cProfile)")  # fmt: skip
        stats = pstats.Stats(profiler)
        total = max(stats.total_tt, 1e-9)  # type: ignore[attr-defined]
        for label, module, function in PARTS:
            # The outermost of the functions of that name there (a template's render holds
            # its nodes' render), by cumulative time.
            spent = max(
                (row[3] for (filename, _line, name), row in stats.stats.items()  # type: ignore[attr-defined]
                 if name == function and filename.replace("\\", "/").endswith(module)),
                default=0.0,
            )  # fmt: skip
            if spent:
                print(f"  {label:<42} {spent * 1000 / requests_each:7.2f} ms  "
                      f"{spent * 100 / total:5.1f} %")  # fmt: skip
        for order in ("cumulative", "tottime"):
            output = io.StringIO()
            pstats.Stats(profiler, stream=output).sort_stats(order).print_stats(top)
            lines = output.getvalue().splitlines()
            start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
            print(f"  by {order} time:")
            print("\n".join("    " + line for line in lines[start:] if line.strip()))


# --- gunicorn and wrk ----------------------------------------------------------------------


def gunicorn(*, port: int, workers: int, log: Path) -> harness.Server:
    """`gunicorn config.wsgi` in a child process, stopped on exit whatever happens."""
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", str(workers),
               "--bind", f"{harness.HOST}:{port}", "--log-level", "warning"]  # fmt: skip
    return harness.Server(command, name="gunicorn", url=f"http://{harness.HOST}:{port}",
                          ready_path="/healthz", log=log, stop_timeout=30)  # fmt: skip


@dataclass
class Target:
    name: str
    path: str
    headers: dict[str, str]
    # What a right answer holds (a learner's page, not the login page; the API's JSON list).
    expect: str


@dataclass
class Load:
    target: Target
    requests: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    latency: dict[str, float] | None = None  # percentile -> ms
    non2xx: int = 0
    socket_errors: dict[str, int] | None = None
    body_bytes: int = 0
    items: int = 0

    @property
    def errors(self) -> int:
        return self.non2xx + sum((self.socket_errors or {}).values())


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str, load: Load) -> None:
    found = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    if found is None:
        raise RuntimeError(f"Unexpected wrk output:\n{output}")
    load.requests = int(found.group(1))
    load.seconds = _ms(found.group(2) + found.group(3)) / 1000
    load.rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    load.latency = {
        p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", output, re.M)
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)  # fmt: skip
    load.socket_errors = dict(
        zip(("connect", "read", "write", "timeout"),
            (int(n) for n in errors.groups()) if errors else (0, 0, 0, 0), strict=True)
    )  # fmt: skip
    non2xx = re.search(r"NON2XX (\d+)", output)
    load.non2xx = int(non2xx.group(1)) if non2xx else 0


def run_wrk(url: str, target: Target, *, duration: float, connections: int, threads: int,
            script: Path) -> str:  # fmt: skip
    command = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={duration:g}s",
        "--latency",
        "--timeout=10s",
        f"--script={script}",
    ]
    for name, value in target.headers.items():
        command += ["--header", f"{name}: {value}"]
    done = subprocess.run(  # noqa: S603 (wrk from PATH, our arguments)
        [*command, url + target.path], capture_output=True, text=True, timeout=duration + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def check_answer(url: str, target: Target, load: Load) -> None:
    """One request before the load: the right page or JSON, not a redirect to the login."""
    answer = requests.get(url + target.path, headers=target.headers, timeout=30,
                          allow_redirects=False)  # fmt: skip
    if answer.status_code != 200 or target.expect not in answer.text:
        raise RuntimeError(f"{target.path} answered {answer.status_code}: {answer.text[:300]}")
    load.body_bytes = len(answer.content)
    if answer.headers.get("Content-Type", "").startswith("application/json"):
        load.items = len(answer.json())
    elif target.path == BASELINE:
        load.items = 0
    else:
        load.items = answer.text.count('<li class="entry ')  # an entry on each day it covers


# --- report --------------------------------------------------------------------------------


def spread(values: list[float], digits: int = 1) -> str:
    return f"{min(values):,.{digits}f}–{max(values):,.{digits}f}"


def ratio_of(load: Load, baseline: Load) -> float:
    return load.rate / baseline.rate if baseline.rate else 0.0


def report(runs: dict[int, list[dict[str, Load]]], statements: dict[str, int], *,
           args: argparse.Namespace) -> None:  # fmt: skip
    """For each CONN_MAX_AGE: each target's figures over the repeats (median, spread) and its
    ratio to /healthz of the same repeat; then the targets, met or missed."""
    print(
        f"\nLoad: wrk --threads {args.threads} --connections {args.connections} "
        f"--duration {args.duration:g}s --latency, after a {args.warmup:g} s warm-up; "
        f"{args.repeat} repeat(s), each loading {', '.join(n for n in runs_order(runs))} in turn"
    )
    checks: list[tuple[str, str, bool]] = []
    for conn_max_age, repeats in runs.items():
        print(f"\nCONN_MAX_AGE={conn_max_age}")
        rows = []
        for name in runs_order(runs):
            loads = [repeat[name] for repeat in repeats]
            rates = [load.rate for load in loads]
            p50 = [(load.latency or {}).get("50", 0.0) for load in loads]
            p99 = [(load.latency or {}).get("99", 0.0) for load in loads]
            sockets = [load.socket_errors or {} for load in loads]
            socket_errors = "/".join(
                str(sum(s.get(k, 0) for s in sockets)) for k in ("connect", "read", "write",
                                                                  "timeout")
            )  # fmt: skip
            if name == "healthz":
                ratios_text = ["1", "-"]
            else:
                ratios = [ratio_of(repeat[name], repeat["healthz"]) for repeat in repeats]
                ratios_text = [f"{harness.median(ratios):.3f}", spread(ratios, 3)]
            rows.append([
                name, f"{sum(load.requests for load in loads):,}",
                f"{harness.median(rates):,.1f}", spread(rates),
                *ratios_text,
                f"{harness.median(p50):.1f}", f"{harness.median(p99):.1f}",
                str(sum(load.non2xx for load in loads)), socket_errors,
                str(statements.get(name, "-")), f"{loads[0].body_bytes / 1024:.0f}",
                str(loads[0].items),
            ])  # fmt: skip
            errors = sum(load.errors for load in loads)
            checks.append((f"CONN_MAX_AGE={conn_max_age}, {name}: errors = {TARGET_ERRORS} "
                           f"(non-2xx + socket errors)", str(errors),
                           errors <= TARGET_ERRORS))  # fmt: skip
            if name in TARGET_RATIOS:
                value = harness.median(ratios)
                checks.append((f"CONN_MAX_AGE={conn_max_age}, {name}: req/s >= "
                               f"{TARGET_RATIOS[name]:.2f} of /healthz's (median)",
                               f"{value:.3f} ({spread(ratios, 3)})",
                               value >= TARGET_RATIOS[name]))  # fmt: skip
        print(harness.table(["target", "requests", "req/s", "req/s spread", "÷ /healthz",
                             "÷ spread", "p50 ms", "p99 ms", "non-2xx",
                             "socket errors c/r/w/t", "SQL/request", "KiB", "items"],
                            rows))  # fmt: skip
    print(
        "\n  req/s, p50, p99: medians over the repeats; spread: the lowest and the highest.\n"
        "  ÷ /healthz: the target's req/s divided by /healthz's in the same repeat.\n"
        "  non-2xx: responses other than 2xx (a Lua script; wrk's own count lets 3xx pass).\n"
        "  socket errors: connect/read/write/timeout (wrk --timeout 10s), over the repeats.\n"
        "  SQL/request: one request through Django's test client in the benchmark process\n"
        "  (CaptureQueriesContext, BEGIN/COMMIT left out). items: entries on the page / objects\n"
        "  in the JSON list."
    )
    print("\nTargets (issues 'Scale' and 'Speed near the floor')")
    width = max(len(label) for label, _, _ in checks)
    for label, value, ok in checks:
        print(f"  {'MET' if ok else 'MISSED':<6}  {label:<{width}}  {value}")
    missed = sum(not ok for _, _, ok in checks)
    print(f"\n{len(checks) - missed} of {len(checks)} targets met" +
          (f", {missed} MISSED" if missed else "") + ".")  # fmt: skip


def runs_order(runs: dict[int, list[dict[str, Load]]]) -> list[str]:
    first = next(iter(runs.values()))[0]
    return list(first)


# --- main ----------------------------------------------------------------------------------


def conn_max_ages(value: str) -> list[int]:
    try:
        ages = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds, comma-separated: 0,60") from None
    if not ages or any(age < 0 for age in ages):
        raise argparse.ArgumentTypeError("expected seconds, comma-separated: 0,60")
    return ages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30, help="Seconds of load per target "
                        "and repeat (default 30).")  # fmt: skip
    parser.add_argument(
        "--connections", type=int, default=16, help="Open connections, wrk -c (default 16)."
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads, wrk -t (default 2).")
    parser.add_argument("--warmup", type=float, default=3, help="Seconds of load, not measured, "
                        "before each target (default 3).")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="Times each target is loaded, in "
                        "turn with the others, for each CONN_MAX_AGE (default 3).")  # fmt: skip
    parser.add_argument(
        "--conn-max-age",
        type=conn_max_ages,
        default=None,
        help="CONN_MAX_AGE values to serve with, comma-separated, gunicorn started again for "
        "each (default 0,60; $CONN_MAX_AGE alone when set).",
    )
    parser.add_argument(
        "--gunicorn-workers", type=int, default=2, help="gunicorn sync workers (default 2)."
    )
    parser.add_argument("--events", type=int, default=300,
                        help="Entries in each of the learner's two primary calendars (default "
                        "300).")  # fmt: skip
    parser.add_argument(
        "--formations",
        type=int,
        default=20,
        help="Formations the learner is enrolled in (default 20).",
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="Also profile N requests of each target in this process (cProfile) "
                        "and print where the time goes (default 0: no profile).")  # fmt: skip
    parser.add_argument("--profile-only", action="store_true",
                        help="With --profile: no gunicorn, no wrk.")  # fmt: skip
    harness.add_scratch_database_arguments(
        parser, default=DEFAULT_DATABASE_URL, variable="BENCH_LOAD_DATABASE_URL"
    )
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.connections < 1 or args.threads < 1 or args.repeat < 1:
        parser.error("--duration, --connections, --threads and --repeat must be positive")
    if args.connections < args.threads:
        parser.error("wrk needs at least as many --connections as --threads")
    if args.profile_only and not args.profile:
        parser.error("--profile-only needs --profile N")
    if args.conn_max_age is None:
        from_environment = os.environ.get("CONN_MAX_AGE")
        args.conn_max_age = conn_max_ages(from_environment) if from_environment else [0, 60]
    problem = harness.check_scratch_database(args.database_url)
    if problem:
        parser.error(problem)
    if shutil.which("wrk") is None and not args.profile_only:
        parser.error("wrk is not installed (Debian, Ubuntu: apt-get install wrk)")
    harness.exit_on_sigterm()

    # gunicorn inherits this environment: production settings (DEBUG off), plain HTTP.
    harness.use_production_settings(
        args.database_url,
        SECURE_SSL_REDIRECT="false",
        CELERY_BROKER_URL="",  # the connect and sync below run inline
    )
    runs: dict[int, list[dict[str, Load]]] = {}
    with (
        harness.scratch_database(args.database_url, keep=args.keep_database),
        harness.bench("load-bench-", extra_ports=1) as bench,
    ):
        from django.conf import settings
        from django.core.management import call_command

        harness.print_heading("Load benchmark (benchmarks/load_benchmark.py)")
        print(f"  database: {bench.database}; gunicorn --workers {args.gunicorn_workers} (sync), "
              f"CONN_MAX_AGE {', '.join(map(str, args.conn_max_age))}")  # fmt: skip
        harness.progress("Collecting static files (DEBUG off serves them from the manifest)...")
        call_command("collectstatic", interactive=False, verbosity=0)
        with bench.sandbox(events=args.events):
            harness.progress("Connecting, importing and exporting the learner's calendars...")
            learner = make_learner(args.formations)
        print(f"  learner: {learner.imported_events} imported events (2 calendars), "
              f"{learner.formations} formations ({learner.exported} exported)")  # fmt: skip
        today = date.today()
        month = today.replace(day=1)
        following = (month + timedelta(days=32)).replace(day=1)
        baseline = Target("healthz", BASELINE, {}, expect="ok")
        targets = [
            Target("calendar page", "/calendar/",
                   {"Cookie": f"{settings.SESSION_COOKIE_NAME}={learner.session_cookie}"},
                   expect='class="calendar-head'),
            Target("API events", f"/api/calendar-integration/events?start={month}"
                   f"&end={following}", {"Authorization": f"Bearer {learner.api_token}"},
                   expect='"source"'),
        ]  # fmt: skip
        statements = statements_per_request([baseline, *targets])
        if args.profile:
            profile([baseline, *targets], requests_each=args.profile)
            if args.profile_only:
                return 0
        script = bench.scratch / "count.lua"
        script.write_text(LUA)
        (site_port,) = bench.ports
        options = {"connections": args.connections, "threads": args.threads, "script": script}
        for conn_max_age in args.conn_max_age:
            os.environ["CONN_MAX_AGE"] = str(conn_max_age)  # gunicorn's settings read it
            runs[conn_max_age] = []
            with gunicorn(port=site_port, workers=args.gunicorn_workers,
                          log=bench.scratch / f"gunicorn-{conn_max_age}.log") as site:  # fmt: skip
                for repeat in range(args.repeat):
                    loads: dict[str, Load] = {}
                    for target in (baseline, *targets):
                        load = Load(target)
                        check_answer(site.url, target, load)
                        if args.warmup:
                            run_wrk(site.url, target, duration=args.warmup, **options)
                        harness.progress(f"CONN_MAX_AGE={conn_max_age}, repeat {repeat + 1}/"
                                         f"{args.repeat}: loading {target.name} for "
                                         f"{args.duration:g} s...")  # fmt: skip
                        output = run_wrk(site.url, target, duration=args.duration, **options)
                        parse_wrk(output, load)
                        loads[target.name] = load
                    runs[conn_max_age].append(loads)
    report(runs, statements, args=args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
