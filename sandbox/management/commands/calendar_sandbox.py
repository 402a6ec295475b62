from __future__ import annotations

import gc
import signal
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox.constants import DEFAULT_PORT, DEFAULT_TLS_PORT


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default


class Command(BaseCommand):
    help = (
        "Runs the local Google Calendar and Microsoft Graph emulator that the application, its "
        "tests and the demo use (see sandbox/README.md)."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument(
            "--port",
            type=int,
            default=_port(settings.CALENDAR_SANDBOX_URL, DEFAULT_PORT),
            help="Plain HTTP port: pages a browser opens and Google's endpoints.",
        )
        parser.add_argument(
            "--tls-port",
            type=int,
            default=_port(settings.CALENDAR_SANDBOX_TLS_URL, DEFAULT_TLS_PORT),
            help="HTTPS port: the Microsoft identity platform and Graph.",
        )
        parser.add_argument("--seed", type=int, default=1, help="Seed of the generated data.")
        parser.add_argument(
            "--events",
            type=int,
            default=200,
            help="Events in each account's primary calendar (occurrences counted).",
        )
        parser.add_argument(
            "--token-lifetime", type=int, default=3600, help="Access token lifetime, seconds."
        )
        parser.add_argument(
            "--state-dir",
            type=Path,
            default=settings.CALENDAR_SANDBOX_STATE_DIR,
            help="Where the sandbox keeps its certificate authority.",
        )
        parser.add_argument(
            "--needed",
            action="store_true",
            help="Only answer whether the sandbox is needed: exit 0 when CALENDAR_SANDBOX is on "
            "or no provider credentials are configured, 1 otherwise.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["needed"]:
            configured = settings.GOOGLE_CLIENT_ID or settings.OUTLOOK_CLIENT_ID
            raise SystemExit(0 if settings.CALENDAR_SANDBOX or not configured else 1)

        from sandbox.core import Options, Sandbox

        started = time.perf_counter()
        sandbox_options = Options(
            seed=options["seed"],
            events=options["events"],
            access_token_lifetime=options["token_lifetime"],
            state_dir=options["state_dir"],
        )
        # The clients the site will use (the sandbox's own unless set otherwise), beside the
        # sandbox's defaults: the site and the sandbox always agree.
        if settings.GOOGLE_CLIENT_ID:
            sandbox_options.google_clients[settings.GOOGLE_CLIENT_ID] = (
                settings.GOOGLE_CLIENT_SECRET
            )
        if settings.OUTLOOK_CLIENT_ID:
            sandbox_options.outlook_clients[settings.OUTLOOK_CLIENT_ID] = (
                settings.OUTLOOK_CLIENT_SECRET
            )
        sandbox = Sandbox(sandbox_options)
        # The generated calendars live as long as the process: kept out of the collector's
        # passes, which otherwise walk all of them again and again while a large page is built
        # (a fifth of a page's time with 10,000 events).
        gc.collect()
        gc.freeze()
        try:
            sandbox.start(options["host"], options["port"], options["tls_port"])
        except OSError as error:
            raise CommandError(
                f"Cannot listen on {options['host']} ports {options['port']} and "
                f"{options['tls_port']}: {error.strerror}. Is a sandbox already running?"
            ) from error
        self._describe(sandbox, time.perf_counter() - started)

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            sandbox.stop()

    def _describe(self, sandbox: Any, elapsed: float) -> None:
        write = self.stdout.write
        write(self.style.SUCCESS(f"Calendar sandbox ready in {elapsed:.1f} s"))
        write(f"  Pages, Google:        {sandbox.http_url}/_sandbox/")
        write(f"  Microsoft, Graph:     {sandbox.https_url} (CA: {sandbox.ca_path})")
        for account in sandbox.store.accounts.values():
            events = sum(not e.deleted for e in account.primary.events.values())
            write(f"  {account.provider:<9} {account.email:<32} {events} entries")
        self.stdout.flush()
