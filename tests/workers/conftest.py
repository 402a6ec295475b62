"""Real Celery workers, started as subprocesses, against a real Redis and the PostgreSQL test
database, calling the session's sandbox.

Each test gets its own Redis database emptied (WORKER_TESTS_BROKER_URL, by default
redis://127.0.0.1:6379/11) and the Celery app of this process switched to it, so that what
the code sends (`dispatch_*`, `.delay`, the formations' signals, the webhooks of the live
server) goes to the workers the test starts with `workers.start()`. A worker is
`python -m celery -A config worker` in a process group of its own, configured only through
its environment, as in production; it reaches the test database, which is why the tests need
`transactional_db`: the worker sees committed rows only.

Without PostgreSQL or Redis the tests are skipped with the reason, except in CI (CI=true),
where they must run and a missing service fails them. .ci/run starts both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

import kombu.pools
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from calendars.models import SyncRun
from config.celery import app
from sandbox.core import Sandbox
from tests.calendars.conftest import forget_exported_events  # noqa: F401 (a fixture)

pytest.register_assert_rewrite("tests.workers.helpers")
from tests.workers.helpers import wait_for  # noqa: E402 (after the line above)

BROKER_URL = os.environ.get("WORKER_TESTS_BROKER_URL", "redis://127.0.0.1:6379/11")
BASE_DIR = Path(__file__).resolve().parents[2]
# Generous: a worker starts in 2-3 s on a quiet machine, much more on a loaded CI one.
START_TIMEOUT = 60.0
# Settings of this process that the workers must share, passed as the variables that set them.
SHARED_SETTINGS = [
    "SECRET_KEY",
    "CALENDAR_TOKEN_KEY",
    "SITE_URL",
    "CALENDAR_IMPORT_DAYS_BACK",
    "CALENDAR_IMPORT_DAYS_AHEAD",
    "CALENDAR_RETRY_ATTEMPTS",
    "CALENDAR_RETRY_BASE",
    "CALENDAR_RETRY_MAX_WAIT",
    "CALENDAR_EXPORT_LOCK_WAIT",
    "CALENDAR_HTTP_TIMEOUT",
    "CALENDAR_PUSH_ENABLED",
    "CALENDAR_WEBHOOK_URL",
    "CALENDAR_PUSH_DEBOUNCE",
    "CALENDAR_SYNC_INTERVAL",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1"}


def unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason}; in CI (CI=true) the worker tests must run", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def every_event_in_the_window(wide_window: None) -> None:
    """Every generated sandbox event inside the import window, in the workers too."""


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    """The broker, once PostgreSQL is known to be the database: checked first, so that a
    run on SQLite skips (or fails, in CI) at once."""
    if django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        unavailable(
            "the worker tests need PostgreSQL (their workers are other processes sharing the "
            "test database); .ci/run runs them with DATABASE_URL=postgres://..."
        )
    client = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2, socket_timeout=10)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        unavailable(f"Redis is not reachable at {BROKER_URL} ({error}); .ci/run starts it")
    yield client
    client.close()


class Broker:
    """The Redis database the workers consume from, read the way kombu writes it."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self.client = client
        self.queue = queue

    def waiting(self) -> int:
        """Messages in the queue (every priority list kombu keeps for it)."""
        return sum(
            self.client.llen(key)
            for key in self.client.scan_iter(match=f"{self.queue}*")
            if self.client.type(key) == b"list"
        )

    def unacked(self) -> dict[str, float]:
        """Messages delivered to a worker and not acknowledged yet (running tasks, tasks
        waiting for their countdown, tasks of a worker that died): tag → delivery time."""
        return {
            tag.decode(): score
            for tag, score in self.client.zrange("unacked_index", 0, -1, withscores=True)
        }

    def idle(self) -> bool:
        return self.waiting() == 0 and not self.client.hlen("unacked")


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, name: str) -> None:
        self.process = process
        self.log = log
        self.name = name

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> None:
        def ready() -> bool:
            if not self.alive():
                pytest.fail(f"worker {self.name} exited:\n{self.output()[-5000:]}")
            return " ready." in self.output()

        wait_for(
            ready,
            timeout=START_TIMEOUT,
            what=lambda: f"worker {self.name} not ready:\n{self.output()[-5000:]}",
        )

    def children(self) -> list[int]:
        """The pool's processes (prefork)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            return []

    def kill(self) -> None:
        """SIGKILL to the whole process group: the worker and its pool die at once, as when
        a machine or container is lost."""
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> None:
        """Cold shutdown (SIGQUIT): the test is over, nothing is left to finish, and a warm
        one takes seconds."""
        if self.alive():
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGQUIT)

    def wait_or_kill(self, timeout: float = 15.0) -> None:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class Workers:
    """Starts workers for one test and stops them at its end."""

    def __init__(self, broker: Broker, sandbox: Sandbox, log_dir: Path, db_url: str) -> None:
        self.broker = broker
        self.sandbox = sandbox
        self.log_dir = log_dir
        self.db_url = db_url
        self.started: list[Worker] = []

    def environment(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CALENDAR_", "GOOGLE_", "OUTLOOK_", "CELERY_", "PYTEST_"))
        }
        for name in SHARED_SETTINGS:
            value = getattr(django_settings, name)
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
        sandbox = self.sandbox
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=self.db_url,
            CELERY_BROKER_URL=BROKER_URL,
            CELERY_QUEUE=self.broker.queue,
            # The sandbox of this session, as CALENDAR_SANDBOX=true and `calendar_sandbox`
            # set up a real deployment's workers.
            CALENDAR_SANDBOX="true",
            CALENDAR_SANDBOX_URL=sandbox.http_url,
            CALENDAR_SANDBOX_TLS_URL=sandbox.https_url,
            OUTLOOK_CA_BUNDLE=str(sandbox.ca_path),
            GOOGLE_CLIENT_ID=django_settings.GOOGLE_CLIENT_ID,
            GOOGLE_CLIENT_SECRET=django_settings.GOOGLE_CLIENT_SECRET,
            OUTLOOK_CLIENT_ID=django_settings.OUTLOOK_CLIENT_ID,
            OUTLOOK_CLIENT_SECRET=django_settings.OUTLOOK_CLIENT_SECRET,
            OAUTHLIB_INSECURE_TRANSPORT="1",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def start(
        self, *, concurrency: int = 1, visibility_timeout: int | None = None, count: int = 1
    ) -> Worker | list[Worker]:
        """Starts `count` workers (in parallel) and waits until they consume; one Worker, or
        a list when count > 1. `visibility_timeout`: seconds after which this worker takes
        back messages delivered to a worker that never acknowledged them."""
        extra = {}
        if visibility_timeout is not None:
            extra["CELERY_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
        env = self.environment(**extra)
        new = []
        for _ in range(count):
            name = f"w{len(self.started) + 1}-{uuid.uuid4().hex[:6]}"
            log = self.log_dir / f"{name}.log"
            command = [
                sys.executable, "-m", "celery", "-A", "config", "worker",
                "--pool", "prefork", "--concurrency", str(concurrency),
                "--hostname", f"{name}@%h", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ]  # fmt: skip
            with log.open("wb") as out:
                process = subprocess.Popen(
                    command,
                    cwd=BASE_DIR,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group, killed as one
                )
            worker = Worker(process, log, name)
            self.started.append(worker)
            new.append(worker)
        for worker in new:
            worker.wait_ready()
        return new[0] if count == 1 else new

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Until no task waits, runs or is held for later, for a second in a row (a task may
        be between the queue and the worker's list of unacknowledged ones for an instant),
        and no sync run is open."""
        calm_since: list[float] = []

        def calm() -> bool:
            for worker in self.started:
                if not worker.alive() and worker.process.returncode not in (
                    0, -signal.SIGKILL, -signal.SIGQUIT,
                ):  # fmt: skip
                    pytest.fail(f"worker {worker.name} died:\n{worker.output()[-5000:]}")
            open_runs = SyncRun.objects.filter(finished_at__isnull=True).exists()
            quiet = self.broker.idle() and not open_runs
            if not quiet:
                calm_since.clear()
                return False
            if not calm_since:
                calm_since.append(time.monotonic())
            return time.monotonic() - calm_since[0] >= 1.0

        wait_for(calm, timeout=timeout, what=lambda: f"workers still busy\n{self.logs()}")

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(f"--- {w.name}\n{w.output()[-tail:]}" for w in self.started)

    def stop_all(self) -> None:
        for worker in self.started:
            worker.terminate()
        for worker in self.started:
            worker.wait_or_kill()

    @contextmanager
    def inline(self) -> Iterator[None]:
        """Tasks sent meanwhile run here and now, as without a broker: for setting a test up
        without the workers seeing it."""
        app.conf.task_always_eager = True
        try:
            yield
        finally:
            app.conf.task_always_eager = False


def _drop_producers() -> None:
    """Celery keeps its broker connections in kombu's pools, one per broker: closed and
    forgotten, so that the next message goes to the broker configured now."""
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def _sending_to(broker_url: str) -> Iterator[None]:
    """The app of this process sends to `broker_url` instead of running tasks inline. The
    queue keeps its name (CELERY_QUEUE): the Redis database is ours alone."""
    saved = {name: app.conf[name] for name in ("task_always_eager", "broker_url")}
    app.conf.update(task_always_eager=False, broker_url=broker_url)
    _drop_producers()
    try:
        yield
    finally:
        app.conf.update(saved)
        _drop_producers()


@pytest.fixture
def workers(
    redis_client: redis.Redis,
    transactional_db: None,
    sandbox_settings: Sandbox,
    tmp_path: Path,
    forget_exported_events: None,  # noqa: F811
) -> Iterator[Workers]:
    """`workers.start(...)` starts real workers, pointed at the test database and the
    session's sandbox; those still running are stopped at the end, before the database is
    emptied. From the start of the test, the tasks it sends go to Redis (but those sent
    within `workers.inline()`)."""
    redis_client.flushdb()
    database = connection.settings_dict
    db_url = "postgres://{}:{}@{}:{}/{}".format(
        quote(database["USER"] or "", safe=""),
        quote(database["PASSWORD"] or "", safe=""),
        database["HOST"] or "127.0.0.1",
        database["PORT"] or 5432,
        quote(database["NAME"], safe=""),
    )
    broker = Broker(redis_client, app.conf.task_default_queue)
    pool = Workers(broker, sandbox_settings, tmp_path, db_url)
    with _sending_to(BROKER_URL):
        try:
            yield pool
        finally:
            pool.stop_all()
            redis_client.flushdb()
