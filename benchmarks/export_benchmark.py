"""How many requests and how long exporting a learner's formations takes.

Runs the provider sandbox in its own process (benchmarks/harness), connects a Google and an
Outlook account through the real consent flow, enrols one learner in N formations (500 by
default) and, for each provider, measures:

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
import time
from datetime import timedelta

import harness

# Issue 6, "Speed".
TARGET_REQUESTS = {"google": 10, "outlook": 25}
TARGET_REEXPORT_REQUESTS = 0
BATCH = {"google": "google.batch", "outlook": "graph.batch"}
CALLS = {
    "google": ("google.events.insert", "google.events.patch", "google.events.delete"),
    "outlook": ("graph.events.create", "graph.events.update", "graph.events.delete"),
}


def measure(sandbox: harness.SandboxProcess, integration, *, label: str) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from calendars.sync.exporting import integration_export

    sandbox.reset_counters()
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
        # Inner requests Graph refused for the mailbox's 4 concurrent requests (Outlook).
        str(counters["graph.throttled.mailbox_concurrency"]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formations", type=int, default=500)
    args = parser.parse_args(argv)
    harness.exit_on_sigterm()

    rows: list[list[str]] = []
    checks: list[harness.Check] = []
    with harness.bench("export-bench-") as bench:
        from django.contrib.auth import get_user_model
        from django.utils import timezone

        from formations.models import Formation

        harness.print_heading("Export benchmark (benchmarks/export_benchmark.py)")
        print(f"  database: {bench.database}; formations: {args.formations}")
        with bench.sandbox(events=20) as sandbox:
            learner = get_user_model().objects.create_user("bench-learner")
            start = (timezone.now() + timedelta(days=1)).replace(minute=0, second=0,
                                                                 microsecond=0)  # fmt: skip
            formations = harness.formations_create(
                (start + timedelta(hours=3 * n) for n in range(args.formations)),
                duration=timedelta(hours=2),
                learner=learner,
            )
            for provider in ("google", "outlook"):
                harness.progress(
                    f"{provider}: connecting and exporting {args.formations} formations"
                )
                integration = harness.connect(learner, provider)
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
                checks.append((f"{provider}: first export throttled inner requests",
                               f"{first[9]} == 0", int(first[9]) == 0))  # fmt: skip
    print()
    print(harness.table(["provider", "run", "created", "updated", "unchanged", "failed",
                         "requests", "calls inside", "SQL queries", "seconds", "throttled"],
                        rows))  # fmt: skip
    print()
    for name, figure, ok in checks:
        print(f"  {harness.verdict(ok)}  {name}: {figure}")
    harness.print_tally(checks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
