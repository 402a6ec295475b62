"""Commands that write made-up demo data: they refuse to run with DEBUG off (a production
site) unless told `--force`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import BaseCommand, CommandError, CommandParser


class DemoCommand(BaseCommand):
    """A command writing demo data; `refusal` says what it writes, for the refusal."""

    refusal = "writes made-up data"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="Run even with DEBUG off (never in production)."
        )

    def execute(self, *args: Any, **options: Any) -> Any:
        if not settings.DEBUG and not options.get("force"):
            name = self.__module__.rsplit(".", 1)[-1]
            raise CommandError(
                f"{name} {self.refusal}; it refuses to run with DEBUG off. Use --force if this "
                "really is a demo machine."
            )
        return super().execute(*args, **options)
