from __future__ import annotations

import sys
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from calendars.models import CalendarIntegration
from calendars.providers import PROVIDERS
from calendars.providers.base import ProviderError
from calendars.sync import ImportResult, integration_import


class Command(BaseCommand):
    help = (
        "Imports the calendars of every learner (or of --user), for both providers (or "
        "--provider). Safe to run while the site and other imports run; exits with status 1 "
        "when any integration failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", help="Username or e-mail of one learner.")
        parser.add_argument("--provider", choices=sorted(PROVIDERS), help="Only this provider.")

    def handle(self, *args: Any, user: str | None = None, provider: str | None = None,
               **options: Any) -> None:  # fmt: skip
        integrations = (
            CalendarIntegration.objects.filter(
                import_enabled=True, status__in=["connected", "error"]
            )
            .select_related("user")
            .defer("credentials")
            .order_by("pk")
        )
        if user:
            learner = get_user_model().objects.filter(Q(username=user) | Q(email__iexact=user))
            if not learner.exists():
                raise CommandError(f"No learner {user!r}.")
            integrations = integrations.filter(user__in=learner)
        if provider:
            integrations = integrations.filter(provider=provider)

        selected = list(integrations)
        total, failures = ImportResult(), []
        started = time.monotonic()
        for done, integration in enumerate(selected, start=1):
            try:
                total.add(integration_import(integration=integration))
            except ProviderError as error:
                failures.append((integration, error.message))
            self._progress(done, len(selected), len(failures))
        elapsed = time.monotonic() - started

        self.stdout.write(
            f"{len(selected)} integration(s) in {elapsed:.1f} s: {total.created} created, "
            f"{total.updated} updated, {total.deleted} deleted, {total.skipped} skipped; "
            f"{len(failures)} failed."
        )
        for integration, message in failures:
            self.stderr.write(f"  {integration.user} / {integration.provider}: {message}")
        if failures:
            raise SystemExit(1)

    def _progress(self, done: int, total: int, failed: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        line += f" ({failed} failed)" if failed else ""
        if sys.stderr.isatty():
            self.stderr.write(f"\r{line}", ending="" if done < total else "\n")
        elif done == total or done % max(total // 10, 1) == 0:
            self.stderr.write(line)
