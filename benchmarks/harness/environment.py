"""Django against the sandbox and a scratch database: the development set-up the import and
export benchmarks run, the production settings the scale ones run, scratch PostgreSQL databases."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.processes import HOST, SandboxProcess, free_ports

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


@dataclass
class Bench:
    """A run's scratch directory, free ports and configured Django (see `bench`)."""

    scratch: Path
    http_port: int
    tls_port: int
    database: str  # as configure_django describes it
    ports: list[int] = field(default_factory=list)  # the extra ones asked for

    @property
    def state_dir(self) -> Path:
        return self.scratch / "sandbox"

    def sandbox(self, *, log: str = "sandbox.log", **options: Any) -> SandboxProcess:
        return SandboxProcess(port=self.http_port, tls_port=self.tls_port,
                              state_dir=self.state_dir, log=self.scratch / log,
                              **options)  # fmt: skip


@contextlib.contextmanager
def bench(prefix: str, *, extra_ports: int = 0) -> Iterator[Bench]:
    """A temporary directory, free ports for the sandbox (and `extra_ports` more), Django set up
    for them; on the way out, Django's connections closed and the authorities' file removed."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        scratch = Path(name)
        http_port, tls_port, *ports = free_ports(2 + extra_ports)
        database = configure_django(
            http_port=http_port, tls_port=tls_port, state_dir=scratch / "sandbox", scratch=scratch
        )
        from django.db import connections

        try:
            yield Bench(scratch, http_port, tls_port, database, ports)
        finally:
            connections.close_all()
            forget_ca_bundle()


def use_production_settings(database_url: str, **variables: str) -> None:
    """The environment of a production site, which the processes started later inherit: DEBUG
    off, random keys, the scratch database, no push channels (they would need a public
    webhook), and `variables`."""
    os.environ.update({
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CALENDAR_TOKEN_KEY": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": HOST,
        "CALENDAR_PUSH_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        **variables,
    })  # fmt: skip


def add_scratch_database_arguments(
    parser: argparse.ArgumentParser, *, default: str, variable: str
) -> None:
    """A scale benchmark's --database-url (from `variable` in the environment, else `default`)
    and --keep-database."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get(variable, default),
        help="A scratch PostgreSQL database, dropped and created again "
        f"(default ${variable} or {default}).",
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="Leave the database for inspection."
    )


def check_scratch_database(url: str) -> str | None:
    """An error message when `url` is not a PostgreSQL database a benchmark may drop."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        return "the database must be PostgreSQL (postgres://...)"
    if name == "calendar" or "bench" not in name:
        return f"refusing to drop and recreate {name!r}: use a scratch name containing 'bench'"
    return None


def _drop_database(url: str, *, create: bool = False) -> None:
    """Drops the database of `url` (connected to the server's `postgres`) and, with `create`,
    creates it again, empty."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    with psycopg.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username,
        password=parts.password, dbname="postgres", autocommit=True,
    ) as conn:  # fmt: skip
        name = sql.Identifier(parts.path.lstrip("/"))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


@contextlib.contextmanager
def scratch_database(url: str, *, keep: bool = False) -> Iterator[None]:
    """The PostgreSQL database of `url` dropped and created empty; dropped at the end unless
    `keep`. Check the name with check_scratch_database first."""
    _drop_database(url, create=True)
    try:
        yield
    finally:
        if not keep:
            _drop_database(url)
