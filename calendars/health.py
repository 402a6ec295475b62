"""The providers' health as staff read it (the admin's "État des fournisseurs" page): what is
connected, what failed in the last hour, whether the application itself is refused, the push
channels, and how late the oldest pending sync is. Read-only; one pass of a few queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from django.utils.translation import ngettext

from calendars.failures import failure_by_code
from calendars.models import CalendarIntegration, ProviderFault, PushChannel, SyncRun
from calendars.providers.names import PROVIDER_CHOICES
from calendars.services.faults import provider_faults

RECENT = timedelta(hours=1)


@dataclass
class ProviderHealth:
    provider: str
    name: str
    by_status: dict[str, int] = field(default_factory=dict)  # every status, 0 included
    errors: list[tuple[str, str, int]] = field(default_factory=list)  # code, meaning, count
    fault: ProviderFault | None = None  # the application refused (e.g. client secret expired)
    channels_open: int = 0
    channels_due: int = 0  # open, but to renew within CALENDAR_PUSH_RENEW_BEFORE
    oldest_pending: timedelta | None = None  # how late the most overdue sync is

    @property
    def late(self) -> str:
        """How late the oldest pending sync is, in words ("" when none is)."""
        if self.oldest_pending is None:
            return ""
        seconds = int(self.oldest_pending.total_seconds())
        if seconds < 120:
            return ngettext("%(n)d seconde", "%(n)d secondes", seconds) % {"n": seconds}
        if seconds < 7200:
            minutes = seconds // 60
            return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}
        hours = seconds // 3600
        return ngettext("%(n)d heure", "%(n)d heures", hours) % {"n": hours}

    @property
    def statuses(self) -> list[tuple[str, int]]:
        choices = CalendarIntegration.Status.choices
        return [(label, self.by_status[value]) for value, label in choices]


def provider_health(now: datetime | None = None) -> list[ProviderHealth]:
    now = now or timezone.now()
    health = {value: ProviderHealth(value, str(label)) for value, label in PROVIDER_CHOICES}
    for item in health.values():
        item.by_status = {value: 0 for value in CalendarIntegration.Status.values}

    for row in CalendarIntegration.objects.values("provider", "status").annotate(n=Count("pk")):
        if row["provider"] in health:
            health[row["provider"]].by_status[row["status"]] = row["n"]

    errors = (
        SyncRun.objects.filter(started_at__gte=now - RECENT)
        .exclude(error_code="")
        .values("integration__provider", "error_code")
        .annotate(n=Count("pk"))
        .order_by("-n", "error_code")
    )
    for row in errors:
        item = health.get(row["integration__provider"])
        if item is not None:
            meaning = str(failure_by_code(row["error_code"]).message)
            item.errors.append((row["error_code"], meaning, row["n"]))

    for provider, fault in provider_faults().items():  # in force: for today's credentials
        if provider in health:
            health[provider].fault = fault

    renew_before = now + timedelta(seconds=settings.CALENDAR_PUSH_RENEW_BEFORE)
    channels = (
        PushChannel.objects.filter(expires_at__gt=now)
        .values("integration__provider")
        .annotate(open=Count("pk"), due=Count("pk", filter=Q(expires_at__lte=renew_before)))
    )
    for row in channels:
        item = health.get(row["integration__provider"])
        if item is not None:
            item.channels_open, item.channels_due = row["open"], row["due"]

    pending = (
        CalendarIntegration.objects.filter(sync_enabled=True)
        .filter(Q(next_sync_at__lte=now) | Q(sync_requested_at__isnull=False))
        .values("provider")
        .annotate(due=Min("next_sync_at"), asked=Min("sync_requested_at"))
    )
    for row in pending:
        item = health.get(row["provider"])
        if item is None:
            continue
        since = [moment for moment in (row["due"], row["asked"]) if moment and moment <= now]
        if since:
            item.oldest_pending = now - min(since)
    return list(health.values())
