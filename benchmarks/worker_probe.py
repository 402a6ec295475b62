"""Counts the SQL statements of each task a Celery worker runs, for benchmarks/sync_benchmark.py.

Loaded into the real workers with `celery -A config worker --include worker_probe` (the
benchmark puts this folder on PYTHONPATH); nothing else imports it. For every task it adds a
`connection.execute_wrapper` for the task's duration and, once the task is done, appends the
task's statement count, its seconds and the time it ended to three Redis lists
(SYNC_BENCH_PROBE_KEY, in the broker's database), which the benchmark reads after the round.

It also defines the no-op task (`noop`) whose rate on the same workers is the benchmark's
baseline: what a task costs with nothing in it (the broker, the worker, this probe).
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import shared_task
from celery.signals import task_postrun, task_prerun
from django.db import connection
from harness import QueryCounter

KEY = os.environ.get("SYNC_BENCH_PROBE_KEY", "sync-bench")
NOOP = "sync_bench.noop"
_client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
_running: dict[str, tuple[QueryCounter, float]] = {}


@task_prerun.connect
def _started(task_id: str, **_kwargs: Any) -> None:
    counter = QueryCounter()
    connection.execute_wrappers.append(counter)
    _running[task_id] = (counter, time.perf_counter())


@task_postrun.connect
def _finished(task_id: str, task: Any, **_kwargs: Any) -> None:
    entry = _running.pop(task_id, None)
    if entry is None:
        return
    counter, started = entry
    if counter in connection.execute_wrappers:
        connection.execute_wrappers.remove(counter)
    pipe = _client.pipeline()
    pipe.rpush(f"{KEY}:{task.name}:queries", counter.statements)
    pipe.rpush(f"{KEY}:{task.name}:seconds", f"{time.perf_counter() - started:.6f}")
    pipe.rpush(f"{KEY}:{task.name}:ended", f"{time.time():.6f}")
    pipe.execute()


@shared_task(name=NOOP, ignore_result=True)
def noop() -> None:
    """The baseline: a task that does nothing."""
