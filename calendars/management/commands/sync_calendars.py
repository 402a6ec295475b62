from __future__ import annotations

import sys
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from calendars import tasks
from calendars.models import CalendarIntegration, SyncRun
from calendars.providers.names import PROVIDERS


class Command(BaseCommand):
    help = (
        "Syncs the calendars of every learner (or of --user), both ways, for both providers "
        "(or --provider), here and now. Safe to run while the site and the workers sync; each "
        "run is recorded in the sync history. Exits with status 1 when any integration failed. "
        "With --loop, does instead what Celery beat does (due syncs, channel renewals, "
        "history pruning) every N seconds: for a site run without beat."
    )
    direction = SyncRun.Direction.BOTH

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", help="Username or e-mail of one learner.")
        parser.add_argument("--provider", choices=sorted(PROVIDERS), help="Only this provider.")
        if self.direction == SyncRun.Direction.BOTH:
            parser.add_argument(
                "--loop",
                type=float,
                metavar="SECONDS",
                help="Run the periodic jobs every SECONDS, until interrupted.",
            )

    def handle(self, *args: Any, user: str | None = None, provider: str | None = None,
               loop: float | None = None, **options: Any) -> None:  # fmt: skip
        if loop:
            self._loop(loop)
            return
        selected = list(self._integrations(user, provider))
        totals = dict.fromkeys(("created", "updated", "deleted", "skipped"), 0)
        failures, busy = [], 0
        started = time.monotonic()
        for done, integration in enumerate(selected, start=1):
            run = tasks.run_now(integration.pk, SyncRun.Trigger.COMMAND, direction=self.direction)
            if run is None:
                busy += 1
            elif run.error:
                failures.append((integration, run.error))
            else:
                for name in totals:
                    totals[name] += getattr(run, name)
            self._progress(done, len(selected), len(failures))
        elapsed = time.monotonic() - started

        self.stdout.write(
            f"{len(selected)} integration(s) in {elapsed:.1f} s: {totals['created']} created, "
            f"{totals['updated']} updated, {totals['deleted']} deleted, {totals['skipped']} "
            f"skipped; {len(failures)} failed"
            + (f"; {busy} left to the sync already running." if busy else ".")
        )
        for integration, message in failures:
            self.stderr.write(f"  {integration.user} / {integration.provider}: {message}")
        if failures:
            raise SystemExit(1)

    def _integrations(self, user: str | None, provider: str | None) -> Any:
        integrations = (
            CalendarIntegration.objects.exclude(status=CalendarIntegration.Status.NEEDS_RECONNECT)
            .select_related("user")
            .defer("credentials")
            .order_by("pk")
        )
        if self.direction == SyncRun.Direction.IMPORT:
            integrations = integrations.filter(import_enabled=True)
        if user:
            learner = get_user_model().objects.filter(Q(username=user) | Q(email__iexact=user))
            if not learner.exists():
                raise CommandError(f"No learner {user!r}.")
            integrations = integrations.filter(user__in=learner)
        if provider:
            integrations = integrations.filter(provider=provider)
        return integrations

    def _loop(self, every: float) -> None:
        self.stdout.write(f"Periodic calendar jobs every {every:g} s (Ctrl-C to stop).")
        last_prune = 0.0
        try:
            while True:
                due = tasks.sync_due()
                renewed = tasks.renew_channels()
                if time.monotonic() - last_prune > 24 * 3600:
                    tasks.prune_history()
                    last_prune = time.monotonic()
                if due or renewed:
                    self.stdout.write(f"{due} sync(s) sent, {renewed} channel renewal(s).")
                time.sleep(every)
        except KeyboardInterrupt:
            return

    def _progress(self, done: int, total: int, failed: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        line += f" ({failed} failed)" if failed else ""
        if sys.stderr.isatty():
            self.stderr.write(f"\r{line}", ending="" if done < total else "\n")
        elif done == total or done % max(total // 10, 1) == 0:
            self.stderr.write(line)
