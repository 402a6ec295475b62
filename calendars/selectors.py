"""Read queries shared by pages, the API, tasks and commands. Every one that serves a learner
is scoped to that learner."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    FETCH_ONE,
    Count,
    Exists,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.db.models.query import get_related_populators
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import Profile
from calendars.failures import FAILURES, Failure, failure_by_code
from calendars.models import (
    Calendar,
    CalendarIntegration,
    FormationExport,
    ProviderFault,
    PushChannel,
    SyncRun,
)
from formations.models import Enrollment, Formation


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
    # Its provider refuses the application (a fault of ours) and the learner has nothing to
    # do: the banner of calendars.context_processors.calendar_alerts says so.
    unavailable: bool = False

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
    rows = _sync_state_rows().filter(user=user)
    return {row["provider"]: _sync_state(row, requested_since) for row in rows}


@functools.cache
def _sync_state_rows() -> QuerySet[CalendarIntegration, dict[str, Any]]:
    """Built once (never evaluated itself: each call filters a copy): the calendar page and
    its settings read it on every view."""
    runs = SyncRun.objects.filter(integration=OuterRef("pk"))
    last_run = runs.filter(finished_at__isnull=False).order_by("-finished_at", "-pk")
    return CalendarIntegration.objects.annotate(
        running=Exists(runs.filter(finished_at__isnull=True)),
        last_run_error=Subquery(last_run.values("error")[:1]),
        last_run_code=Subquery(last_run.values("error_code")[:1]),
        held=Exists(ProviderFault.objects.filter(provider=OuterRef("provider"))),
    ).values(*STATE_FIELDS)


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
        unavailable=row["held"] and row["status"] != CalendarIntegration.Status.NEEDS_RECONNECT,
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


def integration_for_sync(integration_id: int) -> CalendarIntegration | None:
    """The integration as a sync run reads it once it holds the integration's lock, in two
    queries whatever it holds: its row (credentials included), annotated with what the run
    would otherwise ask one query at a time, then its calendars, which
    `integration_calendars` gives from memory from then on (each knows its integration).

    The annotations: `open_run` (a run of it is still open), `has_exports` (it holds
    exported formations), `provider_fault` (a fault of its provider is recorded),
    `profile_language` (the learner's chosen language, None without a profile),
    `formations_enrolled` (the scheduled formations its learner is enrolled in),
    `channel_count`, `channels_renew_by` (the first expiry of its push channels) and
    `mailbox_watched` (a channel on the whole mailbox); each calendar's `watched` (a channel
    on it). A run's own writes can make them stale: the code that reads them says when they
    stop holding."""
    found = _CompiledRead.of("integration", _integration_row).rows(integration_id)
    if not found:
        return None
    integration = found[0]
    calendars = _CompiledRead.of("calendars", _calendars_for_sync).rows(integration_id)
    for calendar in calendars:
        calendar.integration = integration
    integration._sync_calendars = calendars  # type: ignore[attr-defined]
    return integration


@functools.cache
def _integrations_for_sync() -> QuerySet[CalendarIntegration]:
    """Built once: each read filters a copy."""
    channels = PushChannel.objects.filter(integration=OuterRef("pk"))
    enrolled = (
        Enrollment.objects.filter(
            learner_id=OuterRef("user_id"), formation__status=Formation.Status.SCHEDULED
        )
        .order_by()
        .values("learner_id")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return CalendarIntegration.objects.annotate(
        open_run=Exists(
            SyncRun.objects.filter(integration=OuterRef("pk"), finished_at__isnull=True)
        ),
        has_exports=Exists(FormationExport.objects.filter(integration=OuterRef("pk"))),
        provider_fault=Exists(ProviderFault.objects.filter(provider=OuterRef("provider"))),
        profile_language=Subquery(
            Profile.objects.filter(user_id=OuterRef("user_id")).values("language")[:1]
        ),
        formations_enrolled=Coalesce(Subquery(enrolled), 0),
        channel_count=Coalesce(
            Subquery(
                channels.order_by()
                .values("integration_id")
                .annotate(count=Count("pk"))
                .values("count")
            ),
            0,
        ),
        channels_renew_by=Subquery(channels.order_by("expires_at").values("expires_at")[:1]),
        mailbox_watched=Exists(channels.filter(calendar__isnull=True)),
    )


def _integration_row(integration_id: int) -> QuerySet[CalendarIntegration]:
    return _integrations_for_sync().filter(pk=integration_id).order_by("pk")[:1]


def _calendars_for_sync(integration_id: int) -> QuerySet[Calendar]:
    return Calendar.objects.filter(integration_id=integration_id).annotate(
        watched=Exists(PushChannel.objects.filter(calendar=OuterRef("pk")))
    )


class _CompiledRead[M: Model]:
    """A queryset of one model, filtered on one id, compiled to SQL once per database
    connection (each thread has its own; the read is kept on it), then run with the id
    alone: Django compiles a queryset again at every run, and the sync's reads, with their
    annotations (subqueries), took as long to compile as PostgreSQL took to answer them. Each
    row becomes the instance the queryset would make, its values converted (the credentials
    decrypted, SQLite's dates parsed) and its annotations set."""

    _ID = -7_240_917  # stands for the id while compiling

    def __init__(self, connection: BaseDatabaseWrapper, queryset: QuerySet[M]) -> None:
        self.connection, self.model = connection, queryset.model
        self.compiler = queryset.query.get_compiler(using=connection.alias)
        self.sql, params = self.compiler.as_sql()
        self.params = list(params)
        self.id_at = self.params.index(self._ID)
        if self._ID in self.params[self.id_at + 1 :]:  # pragma: no cover (a sentinel clash)
            raise AssertionError("the id is not the only such parameter")
        select, klass = self.compiler.select, self.compiler.klass_info
        fields = klass["select_fields"]
        self.model_columns = slice(fields[0], fields[-1] + 1)
        self.field_names = [column[0].target.attname for column in select[self.model_columns]]
        self.annotations = list(self.compiler.annotation_col_map.items())
        # Rows of select_related's models (ModelIterable's way).
        self.related = get_related_populators(klass, select, connection.alias, FETCH_ONE)
        self.converters = self.compiler.get_converters([column[0] for column in select])

    @classmethod
    def of(cls, name: str, queryset: Callable[[int], QuerySet[M]]) -> _CompiledRead[M]:
        """The read `name`, `queryset(id)`, compiled for this thread's connection."""
        connection = connections[DEFAULT_DB_ALIAS]
        reads = connection.__dict__.setdefault("_compiled_reads", {})
        if name not in reads:
            reads[name] = cls(connection, queryset(cls._ID))
        return reads[name]

    def rows(self, id_: int) -> list[M]:
        params = list(self.params)
        params[self.id_at] = id_
        with self.connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        found = []
        for row in self.compiler.apply_converters(rows, self.converters):
            instance = self.model.from_db(
                self.connection.alias, self.field_names, row[self.model_columns]
            )
            for populator in self.related:
                populator.populate(row, instance)
            for name, position in self.annotations:
                setattr(instance, name, row[position])
            found.append(instance)
        return found


def integration_exports_for_sync(integration: CalendarIntegration) -> list[FormationExport]:
    """The integration's exported rows, each with its formation (None once deleted) and
    whether the learner is still enrolled in it (`enrolled`): one query, compiled once per
    connection like the run's read of the integration."""
    rows = _CompiledRead.of("exports", _exports_with_formations).rows(integration.pk)
    for row in rows:
        row.integration = integration
    return rows


def _exports_with_formations(integration_id: int) -> QuerySet[FormationExport]:
    enrolled = Enrollment.objects.filter(
        formation_id=OuterRef("formation_id"), learner_id=OuterRef("integration__user_id")
    )
    return (
        FormationExport.objects.filter(integration_id=integration_id)
        .select_related("formation")
        .annotate(enrolled=Exists(enrolled))
    )


def read_for_sync(integration: CalendarIntegration) -> bool:
    """Whether `integration` was read by `integration_for_sync`: a run holds its lock."""
    return hasattr(integration, "open_run")


def integration_calendars(integration: CalendarIntegration) -> list[Calendar]:
    """The integration's calendars: from memory when `integration_for_sync` read them."""
    known = getattr(integration, "_sync_calendars", None)
    return list(integration.calendars.all()) if known is None else list(known)


def integration_has_exports(integration: CalendarIntegration) -> bool:
    """Whether the integration holds exported formations: as `integration_for_sync` read it,
    unless a write since made that stale (`forget_has_exports`)."""
    known = getattr(integration, "has_exports", None)
    return integration.exports.exists() if known is None else known


def forget_has_exports(integration: CalendarIntegration) -> None:
    integration.__dict__.pop("has_exports", None)


def forget_calendars(integration: CalendarIntegration) -> None:
    """The calendars read with the integration are stale (they were listed again)."""
    integration.__dict__.pop("_sync_calendars", None)
