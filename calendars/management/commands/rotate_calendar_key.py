from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import SecurityEvent
from accounts.security import security_event_record
from calendars.crypto import UndecryptableText
from calendars.models import CalendarIntegration, OAuthState

ENCRYPTED = [(CalendarIntegration, "credentials"), (OAuthState, "flow")]


class Command(BaseCommand):
    help = (
        "Re-encrypts every stored calendar credential under the current CALENDAR_TOKEN_KEY. "
        "Values written under a key of CALENDAR_TOKEN_OLD_KEYS are read with it. Safe to run "
        "again, and while the site runs."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = unreadable = 0
        for model, field in ENCRYPTED:
            for pk in model.objects.values_list("pk", flat=True).iterator():
                with transaction.atomic():
                    rows = model.objects.select_for_update().filter(pk=pk)
                    value = rows.values_list(field, flat=True).first()
                    if isinstance(value, UndecryptableText):
                        unreadable += 1
                        self.stderr.write(f"{model.__name__} {pk}: no configured key reads it")
                        continue
                    if value is not None:
                        rows.update(**{field: value})  # written back under the current key
                        rotated += 1
        self.stdout.write(f"{rotated} value(s) re-encrypted with the current key.")
        security_event_record(
            kind=SecurityEvent.Kind.KEY_ROTATED,
            detail=f"{rotated} re-encrypted, {unreadable} unreadable",
        )
        if unreadable:
            raise CommandError(
                f"{unreadable} value(s) could not be read: add the key they were written "
                "with to CALENDAR_TOKEN_OLD_KEYS and run the command again."
            )
