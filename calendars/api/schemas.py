"""What the API takes and gives, with the product's JSON names. No credential, ever."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Annotated, Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Schema
from pydantic import BeforeValidator, ConfigDict, StrictBool

from calendars.agenda import (
    FORMATION,
    MAX_DAY,
    MIN_DAY,
    AgendaItem,
    all_day_dates,
    parse_day,
)
from calendars.availability import Conflict
from calendars.failures import failure_by_code
from calendars.models import CalendarIntegration, SyncRun
from calendars.selectors import integration_formations_in_calendar
from formations.models import Formation


class AuthUrlOut(Schema):
    authUrl: str  # the product's JSON name


class CallbackIn(Schema):
    """The query the provider sent the browser back with."""

    code: str | None = Field(None, max_length=4096)
    state: str = Field(max_length=128)
    error: str | None = Field(None, max_length=200)


class PasswordConnectIn(Schema):
    """A CalDAV account: its server's address, the username and an app-specific password
    (never returned, never logged)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=500, pattern=r"^https?://")
    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=500)


class RunOut(Schema):
    """One sync of an integration (the latest, in IntegrationOut)."""

    trigger: str  # manual, push, periodic, retry, connect, settings, formation, admin, command
    direction: str  # both, import, export
    started_at: datetime = Field(serialization_alias="startedAt")
    finished_at: datetime | None = Field(serialization_alias="finishedAt")  # None: running
    created: int
    updated: int
    deleted: int
    skipped: int
    # Why it failed, as the learner is told it in their language, and the catalogue's code
    # (calendars.failures); "" and None when it succeeded.
    error: str
    error_code: str | None = Field(serialization_alias="errorCode")

    @classmethod
    def of(cls, run: SyncRun | None) -> RunOut | None:
        if run is None:
            return None
        failure = failure_by_code(run.error_code) if run.error else None
        return cls(
            trigger=run.trigger, direction=run.direction, started_at=run.started_at,
            finished_at=run.finished_at, created=run.created, updated=run.updated,
            deleted=run.deleted, skipped=run.skipped,
            error=str(failure.message) if failure else "",
            error_code=failure.code if failure else None,
        )  # fmt: skip


class IntegrationOut(Schema):
    """An integration as the product's clients know it. No credential, ever."""

    type: str
    account_email: str = Field(serialization_alias="accountEmail")
    account_name: str = Field(serialization_alias="accountName")
    status: str
    import_: bool = Field(serialization_alias="import")
    export: bool = Field(
        description=(
            "true: every formation the learner is enrolled in is added to the calendar that "
            "receives formations and kept up to date. false: only those added one by one "
            "(export-formation), kept up to date too."
        )
    )
    sync: bool
    formations_in_calendar: int = Field(
        serialization_alias="formationsInCalendar",
        description="How many formations this site wrote to the learner's calendar and keeps.",
    )
    scopes: list[str]
    connected_at: datetime = Field(serialization_alias="connectedAt")
    last_sync_at: datetime | None = Field(serialization_alias="lastSyncAt")
    # The last failure, as the learner is told it, and the catalogue's code; "" and None
    # when none is recorded.
    last_error: str = Field(serialization_alias="lastError")
    last_error_code: str | None = Field(serialization_alias="lastErrorCode")
    last_run: RunOut | None = Field(serialization_alias="lastRun")

    @classmethod
    def of(cls, integration: CalendarIntegration) -> IntegrationOut:
        failure = (
            failure_by_code(integration.last_error_code)
            if integration.last_error or integration.last_error_code
            else None
        )
        return cls(
            type=integration.provider,
            account_email=integration.account_email,
            account_name=integration.account_name,
            status=integration.status,
            import_=integration.import_enabled,
            export=integration.export_enabled,
            sync=integration.sync_enabled,
            formations_in_calendar=integration_formations_in_calendar(integration=integration),
            scopes=integration.scopes,
            connected_at=integration.connected_at,
            last_sync_at=integration.last_synced_at,
            last_error=str(failure.message) if failure else "",
            last_error_code=failure.code if failure else None,
            last_run=RunOut.of(integration.sync_runs.first()),
        )


class SettingsIn(Schema):
    """Only the choices sent are changed."""

    model_config = ConfigDict(extra="forbid")

    import_: StrictBool | None = Field(None, alias="import")
    export: StrictBool | None = None
    sync: StrictBool | None = None


def _iso_day(value: Any) -> date:
    day = parse_day(value) if isinstance(value, str) else None
    if day is None:
        raise ValueError(f"expected a date as YYYY-MM-DD, from {MIN_DAY} to {MAX_DAY}")
    return day


IsoDay = Annotated[date, BeforeValidator(_iso_day)]
EVENTS_MAX_DAYS = 366


class AgendaItemOut(Schema):
    """An imported event or a formation. Timed items' `start` and `end` are instants with the
    learner's UTC offset; all-day items' are dates, `end` exclusive."""

    id: str
    title: str
    start: datetime | date
    end: datetime | date
    all_day: bool = Field(serialization_alias="allDay")
    source: str  # "formation", "google" or "outlook"
    calendar: str | None  # the calendar's name; null for formations
    external_id: str | None = Field(serialization_alias="externalId")  # the provider's id
    url: str | None  # the formation's page, or the event's page at its provider
    # An invitation from someone else: the learner's answer ("needs_action", "accepted",
    # "tentative"; declined ones are not listed); null for formations and own events.
    response: str | None = None
    busy: bool = True  # the event blocks the learner's time (false: it shows as free)
    conflicts: list[str] = Field(
        default_factory=list,
        description=(
            "The ids of the items it clashes with, not dismissed by the learner: for a "
            "formation, the busy events over it; for an event, the formations."
        ),
    )

    @staticmethod
    def dump(item: AgendaItem, request: HttpRequest) -> dict[str, Any]:
        """`item` as this schema gives it (`model_dump(by_alias=True)`), by its JSON names in
        its fields' order, built without a model: validating one per item was most of the
        cost of a long list. tests/calendars/test_events_api.py checks it against the
        schema."""
        formation = item.source == FORMATION
        return {
            "id": item.key,
            "title": item.title,
            "start": item.first_day if item.all_day else item.start,
            "end": item.end_day if item.all_day else item.end,
            "allDay": item.all_day,
            "source": item.source,
            "calendar": item.calendar,
            "externalId": item.external_id,
            "url": (request.build_absolute_uri(item.url) if formation else item.url) or None,
            "response": item.response or None,
            "busy": item.busy,
            "conflicts": [other.key for other in item.conflicts],
        }


class ConflictOut(Schema):
    """One of the learner's busy events over a formation. Timed events' `start` and `end`
    are instants with the learner's UTC offset; all-day events' are dates, `end` exclusive."""

    event_id: str = Field(serialization_alias="eventId")  # as in `events`: "event-12"
    title: str
    provider: str  # "google" or "outlook"
    start: datetime | date
    end: datetime | date
    all_day: bool = Field(serialization_alias="allDay")
    dismissed: bool = Field(
        description="The learner said they handle it; it holds until either moves."
    )

    @classmethod
    def of(cls, conflict: Conflict, zone: tzinfo) -> ConflictOut:
        if conflict.all_day:
            start, end = all_day_dates(conflict.start, conflict.end, zone)
        else:
            start = timezone.localtime(conflict.start, zone)
            end = timezone.localtime(conflict.end, zone)
        return cls(
            event_id=conflict.key, title=conflict.title, provider=conflict.provider,
            start=start, end=end, all_day=conflict.all_day, dismissed=conflict.dismissed,
        )  # fmt: skip


class FormationOut(Schema):
    """One of the learner's formations, its times with the learner's UTC offset, and their
    busy events over it (while it is scheduled), dismissed ones included."""

    id: int  # as in its page's address
    uid: str
    title: str
    start: datetime
    end: datetime
    time_zone: str = Field(serialization_alias="timeZone")  # where it takes place
    location: str
    status: str  # "scheduled" or "cancelled"
    url: str  # its page
    conflicts: list[ConflictOut]

    @classmethod
    def of(
        cls, formation: Formation, conflicts: list[Conflict], request: HttpRequest, zone: tzinfo
    ) -> FormationOut:
        return cls(
            id=formation.pk, uid=str(formation.uid), title=formation.title,
            start=timezone.localtime(formation.start, zone),
            end=timezone.localtime(formation.end, zone),
            time_zone=formation.time_zone, location=formation.location,
            status=formation.status,
            url=request.build_absolute_uri(formation.get_absolute_url()),
            conflicts=[ConflictOut.of(c, zone) for c in conflicts],
        )  # fmt: skip


class ErrorDetail(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    error: ErrorDetail


ERRORS: dict[int | str, Any] = {code: ErrorOut for code in (400, 401, 403, 404, 413)}
