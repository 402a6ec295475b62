"""Read queries shared by pages, the API, tasks and commands. Every one that serves a learner
is scoped to that learner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from django.utils import timezone

from calendars.failures import FAILURES, Failure, failure_by_code
from calendars.models import (
    Calendar,
    CalendarIntegration,
    FormationExport,
    ProviderFault,
    PushChannel,
    SyncRun,
)


def learner_integration(user: Any, provider: str) -> CalendarIntegration:
    """The learner's own integration with `provider`, or 404. Credentials stay encrypted
    until used: one no key can read must not make the page fail."""
    return get_object_or_404(
        CalendarIntegration.objects.defer("credentials"), user=user, provider=provider
    )


def formation_integrations(
    *, formation_uid: str, learner_ids: list[int] | None = None
) -> list[int]:
    """The integrations whose calendars hold, or should hold, the formation: those it was
    exported to and those of its learners who export their formations (of `learner_ids`
    only, when given)."""
    integrations = CalendarIntegration.objects.filter(
        Q(exports__formation_uid=formation_uid)
        | Q(export_enabled=True, user__enrollments__formation__uid=formation_uid)
    ).exclude(status=CalendarIntegration.Status.NEEDS_RECONNECT)
    if learner_ids is not None:
        integrations = integrations.filter(user_id__in=learner_ids)
    return sorted(set(integrations.values_list("pk", flat=True)))


def channels_due_for_renewal() -> list[int]:
    """Integrations with a channel that expires before the next renewal round."""
    soon = timezone.now() + timedelta(seconds=settings.CALENDAR_PUSH_RENEW_BEFORE)
    return sorted(
        set(
            PushChannel.objects.filter(expires_at__lte=soon).values_list(
                "integration_id", flat=True
            )
        )
    )


@dataclass(frozen=True)
class SyncState:
    """Where an integration's syncs stand, as the learner is told it."""

    syncing: bool  # a sync is running, or was asked for and has not started yet
    # Why it does not sync, or why the last sync that ended failed; None when all is well.
    # A failure only the learner (or the team) can end is told even while a sync is asked for.
    failure: Failure | None
    synced_at: datetime | None  # the last sync that succeeded
    automatic: bool  # the periodic sync is on: a temporary failure is retried by itself

    @property
    def failed(self) -> bool:
        return self.failure is not None


STATE_FIELDS = [
    "provider", "status", "last_error_code", "last_synced_at", "sync_enabled",
    "sync_requested_at", "running", "last_run_error", "last_run_code", "held",
]  # fmt: skip


def integrations_sync_state(*, user: Any, requested_since: datetime) -> dict[str, SyncState]:
    """`user`'s integrations by provider, with the state of their syncs (a request older than
    `requested_since` that never started counts as lost): one query."""
    runs = SyncRun.objects.filter(integration=OuterRef("pk"))
    last_run = runs.filter(finished_at__isnull=False).order_by("-finished_at", "-pk")
    rows = (
        CalendarIntegration.objects.filter(user=user)
        .annotate(
            running=Exists(runs.filter(finished_at__isnull=True)),
            last_run_error=Subquery(last_run.values("error")[:1]),
            last_run_code=Subquery(last_run.values("error_code")[:1]),
            held=Exists(ProviderFault.objects.filter(provider=OuterRef("provider"))),
        )
        .values(*STATE_FIELDS)
    )
    return {row["provider"]: _sync_state(row, requested_since) for row in rows}


def _sync_state(row: dict[str, Any], requested_since: datetime) -> SyncState:
    requested = row["sync_requested_at"]
    syncing = row["running"] or (requested is not None and requested >= requested_since)
    failure = None
    if row["held"]:  # the provider refuses the application: no sync runs, the team must act
        failure, syncing = FAILURES["service_unavailable"], False
    elif row["status"] == CalendarIntegration.Status.NEEDS_RECONNECT:
        failure, syncing = failure_by_code(row["last_error_code"]), False
        if not failure.action.reconnects:  # a code from before the catalogue
            failure = FAILURES["needs_reconnect"]
    elif row["status"] == CalendarIntegration.Status.ERROR:
        failure = failure_by_code(row["last_error_code"])
    elif row["last_run_error"] and not syncing:
        failure = failure_by_code(row["last_run_code"])
    return SyncState(
        syncing=syncing,
        failure=failure,
        synced_at=row["last_synced_at"],
        automatic=row["sync_enabled"],
    )


def _kept_exports() -> QuerySet[FormationExport]:
    """The formations this site wrote to learners' calendars and still keeps there (not those
    a learner deleted there)."""
    return FormationExport.objects.filter(create_sent=True).exclude(
        state=FormationExport.State.REMOVED
    )


def integration_formations_in_calendar(*, integration: CalendarIntegration) -> int:
    """How many formations this site keeps in the integration's calendar."""
    return _kept_exports().filter(integration=integration).count()


def formations_in_calendars(*, user: Any) -> dict[str, int]:
    """How many formations this site keeps in each of `user`'s calendars, by provider: one
    query."""
    return dict(
        _kept_exports()
        .filter(integration__user=user)
        .values_list("integration__provider")
        .annotate(count=Count("pk"))
    )


@dataclass(frozen=True)
class ShownCalendar:
    pk: int
    provider: str
    name: str
    shown: bool


def calendars_on_page(*, user: Any) -> list[ShownCalendar]:
    """The calendars whose events the calendar page can show (those `user` imports), by
    provider then name, with whether the learner shows them: one query."""
    rows = (
        Calendar.objects.filter(
            integration__user=user, integration__import_enabled=True, import_enabled=True
        )
        .order_by("integration__provider", "-is_primary", "name", "pk")
        .values_list("pk", "integration__provider", "name", "shown")
    )
    return [ShownCalendar(*row) for row in rows]
