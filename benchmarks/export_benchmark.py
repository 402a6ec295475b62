"""How many requests and how long exporting a learner's formations takes.

Runs the provider sandbox in its own process, as benchmarks/import_benchmark.py does, connects
a Google and an Outlook account through the real consent flow, enrols one learner in N
formations (500 by default) and, for each provider, measures:

- the first export: wall time, HTTP requests the sandbox saw (batches, and the calls inside
  them), SQL queries;
- an immediate re-export with nothing changed: requests (target 0) and time;
- a re-export after one formation moved: requests (one batch) and time.

It prints figures next to the targets of issue 6 ("Speed") and exits 0 even when one is
missed: it is a measurement, not a test. See benchmarks/README.md.

    python benchmarks/export_benchmark.py [--formations 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_benchmark import (
    SandboxProcess,
    configure_django,
    connect,
    forget_ca_bundle,
    free_ports,
    progress,
    table,
    verdict,
)

# Issue 6, "Speed".
TARGET_REQUESTS = {"google": 10, "outlook": 25}
TARGET_REEXPORT_REQUESTS = 0
BATCH = {"google": "google.batch", "outlook": "graph.batch"}
CALLS = {
    "google": ("google.events.insert", "google.events.patch", "google.events.delete"),
    "outlook": ("graph.events.create", "graph.events.update", "graph.events.delete"),
}


def reset_counters(sandbox: SandboxProcess) -> None:
    requests.post(f"{sandbox.http_url}/_sandbox/api/counters/reset", timeout=10).raise_for_status()


def measure(sandbox: SandboxProcess, integration, *, label: str) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from calendars.sync import integration_export

    reset_counters(sandbox)
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = integration_export(integration=integration)
        seconds = time.perf_counter() - started
    counters = sandbox.counters()
    provider = integration.provider
    calls = sum(counters[name] for name in CALLS[provider])
    return [
        label,
        str(result.created),
        str(result.updated),
        str(result.unchanged),
        str(result.failed),
        str(counters[BATCH[provider]]),
        str(calls),
        str(len(queries)),
        f"{seconds:.2f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formations", type=int, default=500)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="export-bench-") as scratch_name:
        scratch = Path(scratch_name)
        http_port, tls_port = free_ports(2)
        database = configure_django(
            http_port=http_port, tls_port=tls_port, state_dir=scratch / "sandbox", scratch=scratch
        )
        import django
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connections
        from django.utils import timezone

        from formations.models import Enrollment, Formation

        settings.DEBUG = False
        print("Export benchmark (benchmarks/export_benchmark.py)")
        print(f"  Python {platform.python_version()}, Django {django.get_version()}, "
              f"{os.cpu_count()} CPUs, {platform.platform()}")  # fmt: skip
        print(f"  database: {database}; formations: {args.formations}")
        rows: list[list[str]] = []
        checks: list[tuple[str, str, bool]] = []
        try:
            with SandboxProcess(events=20, port=http_port, tls_port=tls_port,
                                state_dir=scratch / "sandbox",
                                log=scratch / "sandbox.log") as sandbox:  # fmt: skip
                learner = get_user_model().objects.create_user("bench-learner")
                start = (timezone.now() + timedelta(days=1)).replace(minute=0, second=0,
                                                                     microsecond=0)  # fmt: skip
                # bulk_create sends no signal: nothing is exported before the measurement.
                formations = Formation.objects.bulk_create(
                    Formation(title=f"Formation {n}", start=start + timedelta(hours=3 * n),
                              end=start + timedelta(hours=3 * n + 2), location=f"Salle {n % 7}",
                              time_zone="Europe/Paris")
                    for n in range(args.formations)
                )  # fmt: skip
                Enrollment.objects.bulk_create(
                    Enrollment(learner=learner, formation=f) for f in formations
                )
                for provider in ("google", "outlook"):
                    progress(f"{provider}: connecting and exporting {args.formations} formations")
                    integration = connect(learner, provider)
                    first = measure(sandbox, integration, label="first export")
                    again = measure(sandbox, integration, label="re-export, no change")
                    moved = Formation.objects.get(pk=formations[0].pk)
                    moved.start += timedelta(hours=1)
                    moved.end += timedelta(hours=1)
                    Formation.objects.filter(pk=moved.pk).update(start=moved.start, end=moved.end)
                    one = measure(sandbox, integration, label="re-export, 1 moved")
                    for row in (first, again, one):
                        rows.append([provider, *row])
                    checks.append((f"{provider}: first export requests",
                                   f"{first[5]} <= {TARGET_REQUESTS[provider]}",
                                   int(first[5]) <= TARGET_REQUESTS[provider]))  # fmt: skip
                    checks.append((f"{provider}: re-export requests", f"{again[5]} == 0",
                                   int(again[5]) == TARGET_REEXPORT_REQUESTS))  # fmt: skip
        finally:
            connections.close_all()
            forget_ca_bundle()
        print()
        print(table(["provider", "run", "created", "updated", "unchanged", "failed",
                     "requests", "calls inside", "SQL queries", "seconds"], rows))  # fmt: skip
        print()
        for name, figure, ok in checks:
            print(f"  {verdict(ok)}  {name}: {figure}")
        missed = sum(not ok for _, _, ok in checks)
        print(f"\n{len(checks) - missed} of {len(checks)} targets met" +
              (f", {missed} MISSED" if missed else "") + ".")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
