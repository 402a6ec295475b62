"""What the benchmarks share; each script imports this package and product modules, no other
script.

- `processes`: free loopback ports, a server in a child process stopped whatever happens, the
  provider sandbox in its own process (`SandboxProcess`) and its control API.
- `learners`: the sandbox's consent page played as a browser would (`connect`), formations
  bulk-created and enrolled in.
- `environment`: Django set up against the sandbox and a scratch database (`bench`), the
  production settings the scale benchmarks run with, scratch PostgreSQL databases.
- `measure`: statements counted, median and percentile.
- `report`: progress, the machine, tables, targets.
- `baselines`: what the import benchmark compares the import with, the floor and gcal_sync
  (imported by that script alone: it needs Django set up).

The scripts are run as files (`python benchmarks/x.py`), so their folder is on `sys.path`; the
worker processes of benchmarks/sync_benchmark.py get it through PYTHONPATH.
"""

from harness.environment import (
    Bench,
    add_scratch_database_arguments,
    bench,
    check_scratch_database,
    scratch_database,
    use_production_settings,
)
from harness.learners import ACCOUNTS, connect, formations_create
from harness.measure import QueryCounter, median, middle, percentile, statements
from harness.processes import (
    HOST,
    LIST_ENDPOINT,
    ROOT,
    SandboxProcess,
    Server,
    exit_on_sigterm,
    log_tail,
    stop_processes,
)
from harness.report import Check, print_checks, print_heading, print_tally, progress, table, verdict

__all__ = [
    "ACCOUNTS",
    "HOST",
    "LIST_ENDPOINT",
    "ROOT",
    "Bench",
    "Check",
    "QueryCounter",
    "SandboxProcess",
    "Server",
    "add_scratch_database_arguments",
    "bench",
    "check_scratch_database",
    "connect",
    "exit_on_sigterm",
    "formations_create",
    "log_tail",
    "median",
    "middle",
    "percentile",
    "print_checks",
    "print_heading",
    "print_tally",
    "progress",
    "scratch_database",
    "statements",
    "stop_processes",
    "table",
    "use_production_settings",
    "verdict",
]
