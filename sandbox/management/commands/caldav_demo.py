from __future__ import annotations

import importlib.util
import os
from datetime import date
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from sandbox import caldav_demo


class Command(BaseCommand):
    help = (
        "Serves a real CalDAV server (Radicale) on loopback with a demo account and a calendar "
        "of events around today, for `make run` (see sandbox/README.md)."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--needed",
            action="store_true",
            help="Only answer whether it can and should run: exit 0 when CalDAV is offered "
            "(CALDAV_ENABLED) and Radicale is installed, 1 otherwise.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["needed"]:
            installed = importlib.util.find_spec("radicale") is not None
            raise SystemExit(0 if settings.CALDAV_ENABLED and installed else 1)
        command = caldav_demo.prepare(settings.CALENDAR_SANDBOX_STATE_DIR / "caldav", date.today())
        self.stdout.write(
            self.style.SUCCESS(f"CalDAV demo: http://127.0.0.1:{caldav_demo.DEMO_PORT}/")
            + f"  {caldav_demo.DEMO_USERNAME} / {caldav_demo.DEMO_PASSWORD}"
        )
        self.stdout.flush()
        os.execv(command[0], command)  # noqa: S606  (Radicale in this process's place)
