"""The endpoints under /calendar-integration/."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema
from pydantic import ConfigDict

from calendars.agenda import (
    agenda_items,
    day_start,
    learner_zone,
)
from calendars.api.auth import ApiError
from calendars.api.schemas import (
    ERRORS,
    EVENTS_MAX_DAYS,
    AgendaItemOut,
    AuthUrlOut,
    CallbackIn,
    ConflictOut,
    ErrorOut,
    FormationOut,
    IntegrationOut,
    IsoDay,
    PasswordConnectIn,
    SettingsIn,
)
from calendars.availability import Conflict, dismissed_conflicts_between, learner_conflicts
from calendars.errors import ReconnectRequired, Refused
from calendars.failures import FAILURES
from calendars.layout import clashes, mark_conflicts
from calendars.models import CalendarIntegration, SyncRun
from calendars.providers.names import PROVIDERS
from calendars.selectors import learner_integration
from calendars.services.conflicts import conflict_dismiss, conflict_restore
from calendars.services.connection import (
    integration_connect_finish,
    integration_connect_password,
    integration_connect_start,
    integration_redirect_uri,
    integration_update_settings,
)
from calendars.services.faults import provider_faults
from calendars.services.lifecycle import integration_disconnect, integration_formations_withdraw
from calendars.sync.runs import formation_export
from calendars.tasks import dispatch_sync, run_now
from formations.models import Formation

router = Router(tags=["calendar-integration"])
# An event in a path: its id as `events` gives it ("event-12"), or its number.
_EVENT_ID = re.compile(r"(?:event-)?([1-9][0-9]{0,15})")


def _provider(name: str) -> str:
    if name not in PROVIDERS:
        raise ApiError(404, "unknown_provider", _("Ce fournisseur de calendrier n'existe pas."))
    return name


def _connected_by(provider: str, connection: str) -> str:
    """The provider named, if it connects that way (`oauth` or `password`)."""
    name = _provider(provider)
    if PROVIDERS[name].connection != connection:
        other = "/connect" if connection == "oauth" else "/auth-url"
        raise ApiError(
            404,
            "unknown_provider",
            _("Ce fournisseur se connecte autrement : voyez %(path)s.") % {"path": other},
        )
    return name


def _integration(request: HttpRequest, provider: str) -> CalendarIntegration:
    return learner_integration(request.auth, _provider(provider))


def _api_error(status: int, code: str) -> ApiError:
    """An answer with the catalogue's code and sentence (calendars.failures)."""
    return ApiError(status, code, str(FAILURES[code].message))


@router.get(
    "/{provider}/auth-url", response={200: AuthUrlOut, **ERRORS, 502: ErrorOut, 503: ErrorOut}
)
def auth_url(request: HttpRequest, provider: str) -> dict[str, str]:
    """Starts a connection: send the learner's browser to `authUrl`. The flow is valid
    10 minutes, bound to the caller and single-use."""
    url = integration_connect_start(
        user=request.auth,
        provider_name=_connected_by(provider, "oauth"),
        redirect_uri=integration_redirect_uri(
            provider_name=provider, absolute=request.build_absolute_uri
        ),
    )
    return {"authUrl": url}


@router.post(
    "/{provider}/callback", response={200: IntegrationOut, **ERRORS, 502: ErrorOut}, by_alias=True
)
def callback(request: HttpRequest, provider: str, payload: CallbackIn) -> IntegrationOut:
    """Completes a flow started with `auth-url`, from the query the provider redirected to."""
    integration = integration_connect_finish(
        user=request.auth,
        provider_name=_connected_by(provider, "oauth"),
        params=payload.model_dump(exclude_none=True),
    )
    dispatch_sync(integration.pk, SyncRun.Trigger.CONNECT)
    return IntegrationOut.of(integration)


@router.post(
    "/{provider}/connect", response={200: IntegrationOut, **ERRORS, 502: ErrorOut}, by_alias=True
)
def connect_password(
    request: HttpRequest, provider: str, payload: PasswordConnectIn
) -> IntegrationOut:
    """Connects a provider reached with a password (`caldav`: iCloud
    `https://caldav.icloud.com`, Fastmail `https://caldav.fastmail.com/`, Nextcloud...),
    checked with the server at once: a refused password is a 400 `wrong_password`, an address
    that is no CalDAV server a 400 `not_caldav`, and nothing is stored. OAuth providers use
    `auth-url` and `callback` instead."""
    integration = integration_connect_password(
        user=request.auth,
        provider_name=_connected_by(provider, "password"),
        url=payload.url,
        username=payload.username,
        password=payload.password,
    )
    dispatch_sync(integration.pk, SyncRun.Trigger.CONNECT)
    return IntegrationOut.of(integration)


@router.get("/integrations", response={200: list[IntegrationOut], **ERRORS}, by_alias=True)
def integrations(request: HttpRequest) -> list[IntegrationOut]:
    rows = (
        CalendarIntegration.objects.filter(user=request.auth)
        .defer("credentials")
        .order_by("provider")
    )
    return [IntegrationOut.of(row) for row in rows]


@router.put(
    "/integrations/{type}/settings",
    response={200: IntegrationOut, **ERRORS, 409: ErrorOut},
    by_alias=True,
)
def update_settings(
    request: HttpRequest, type: str, payload: SettingsIn, removeExported: bool = False
) -> IntegrationOut:
    """Only the choices sent are changed. Turning `export` off adds no formation any more and
    leaves those already in the calendar, kept up to date; with `?removeExported=true` they
    are taken out (`formationsInCalendar` says how many are left)."""
    integration = integration_update_settings(
        integration=_integration(request, type),
        import_enabled=payload.import_,
        export_enabled=payload.export,
        sync_enabled=payload.sync,
    )
    withdraw = removeExported and not integration.export_enabled
    if withdraw and integration_formations_withdraw(integration=integration).busy:
        raise _api_error(409, "sync_in_progress")
    dispatch_sync(integration.pk, SyncRun.Trigger.SETTINGS)
    return IntegrationOut.of(integration)


@router.delete("/integrations/{type}", response={204: None, **ERRORS})
def disconnect(request: HttpRequest, type: str, removeExported: bool = False) -> HttpResponse:
    """Revokes the grant where the provider allows it (Google) and forgets the credentials.
    With `?removeExported=true`, the exported formations are first taken out of the
    learner's calendar."""
    integration_disconnect(integration=_integration(request, type), remove_exported=removeExported)
    return HttpResponse(status=204)


class ImportOut(Schema):
    created: int
    updated: int
    deleted: int
    skipped: int


@router.post(
    "/{provider}/import",
    response={200: ImportOut, **ERRORS, 409: ErrorOut, 502: ErrorOut, 503: ErrorOut},
)
def import_now(request: HttpRequest, provider: str) -> dict[str, int]:
    """Imports the learner's chosen calendars of this provider now; returns the counts.
    A lost grant is a 409 (needs_reconnect), a provider failure a 502/503."""
    integration = _integration(request, provider)
    if integration.needs_reconnect:
        raise ReconnectRequired(
            integration.last_error or "The integration needs reconnecting.",
            code=integration.last_error_code,
        )
    if integration.provider in provider_faults():  # held until the team fixes our set-up
        raise _api_error(503, "service_unavailable")
    run = run_now(integration.pk, SyncRun.Trigger.MANUAL, direction=SyncRun.Direction.IMPORT)
    if run is None:
        raise _api_error(503, "sync_in_progress")
    if run.failure is not None:
        raise run.failure
    return {name: getattr(run, name) for name in ("created", "updated", "deleted", "skipped")}


class ExportIn(Schema):
    """The formation to export: its number, as in its page's address, or its uid."""

    model_config = ConfigDict(extra="forbid")

    formationId: (  # the product's JSON name
        Annotated[int, Field(ge=1, le=2**53)] | Annotated[str, Field(min_length=1, max_length=64)]
    )


class ExportOut(Schema):
    eventId: str  # the event's id at the provider
    calendarId: str  # the calendar that received it
    status: str  # "created", "updated" or "unchanged"


def _learner_formation(user: Any, reference: int | str) -> Formation:
    formations = Formation.objects.for_learner(user)
    text = str(reference).strip()
    if text.isascii() and text.isdigit():
        found = formations.filter(pk=int(text)).first() if int(text) <= 2**53 else None
    else:
        try:
            found = formations.filter(uid=uuid.UUID(text)).first()
        except ValueError:
            found = None
    if found is None:
        raise ApiError(
            404, "formation_not_found", _("Aucune formation de ce numéro parmi les vôtres.")
        )
    return found


@router.post(
    "/{provider}/export-formation",
    response={200: ExportOut, **ERRORS, 409: ErrorOut, 502: ErrorOut, 503: ErrorOut},
)
def export_formation(request: HttpRequest, provider: str, payload: ExportIn) -> dict[str, str]:
    """Writes one of the learner's formations to their calendar now, or brings its event up
    to date; sending it again changes nothing (never a second event). A formation the learner
    had deleted from their calendar is added again."""
    integration = _integration(request, provider)
    formation = _learner_formation(request.auth, payload.formationId)
    try:
        result = formation_export(integration=integration, formation=formation)
    except Refused as refused:
        raise ApiError(409, refused.code, str(refused.message)) from None
    event_id = result.event_ids.get(str(formation.uid))
    if result.busy or not event_id:
        raise _api_error(503, "export_pending")
    row = integration.exports.get(formation_uid=formation.uid)
    status = "created" if result.created else "updated" if result.updated else "unchanged"
    return {"eventId": event_id, "calendarId": row.calendar_external_id, "status": status}


@router.get("/events", response={200: list[AgendaItemOut], **ERRORS}, by_alias=True)
def events(request: HttpRequest, start: IsoDay, end: IsoDay) -> HttpResponse:
    """The learner's imported events and formations overlapping the days [start, end) in their
    time zone (at most 366 days), in date order. Cancelled events and formations are left
    out."""
    if end <= start:
        raise ApiError(400, "invalid_range", _("La date de fin doit suivre la date de début."))
    if (end - start).days > EVENTS_MAX_DAYS:
        raise ApiError(400, "range_too_long", _("La période demandée ne peut dépasser 366 jours."))
    zone = learner_zone(request.auth)
    items = agenda_items(user=request.auth, start=start, end=end, zone=zone)
    dismissed = dismissed_conflicts_between(
        user=request.auth, start=day_start(start, zone), end=day_start(end, zone)
    )
    items = mark_conflicts(items, clashes(items), dismissed)
    # The schema's JSON, rendered by the API's renderer, without a model per item.
    from calendars.api.app import api  # the API imports this module

    body = [AgendaItemOut.dump(item, request) for item in items if not item.cancelled]
    return api.create_response(request, body, status=200)


# --- formations and their conflicts with the learner's calendar ---------------------------


def _conflicts_of(user: Any, formation: Formation) -> list[Conflict]:
    return learner_conflicts(user=user, formations=[formation]).get(formation.pk, [])


@router.get("/formations/{id}", response={200: FormationOut, **ERRORS}, by_alias=True)
def formation(request: HttpRequest, id: str) -> FormationOut:
    """One of the learner's formations, by its number (as in its page's address) or its
    uid, and their busy events over it (`conflicts`, those of calendars hidden on the
    calendar page too; dismissed ones say so)."""
    found = _learner_formation(request.auth, id)
    return FormationOut.of(
        found, _conflicts_of(request.auth, found), request, learner_zone(request.auth)
    )


def _event_id(value: str) -> int:
    match = _EVENT_ID.fullmatch(value)
    if match is None:
        raise _no_conflict()
    return int(match.group(1))


def _no_conflict() -> ApiError:
    return ApiError(
        404,
        "conflict_not_found",
        _("Cet événement n'est pas un de ceux de votre agenda en conflit avec cette formation."),
    )


def _conflict(request: HttpRequest, formation: Formation, event_id: int) -> ConflictOut:
    for conflict in _conflicts_of(request.auth, formation):
        if conflict.event_id == event_id:
            return ConflictOut.of(conflict, learner_zone(request.auth))
    raise _no_conflict()


DISMISSAL = "/formations/{id}/conflicts/{eventId}/dismissal"


@router.post(DISMISSAL, response={200: ConflictOut, **ERRORS}, by_alias=True)
def dismiss_conflict(request: HttpRequest, id: str, eventId: str) -> ConflictOut:
    """ "Je m'en occupe": the conflict of the event `eventId` ("event-12", as `events` and
    the formation's `conflicts` give it) with the formation is no longer flagged, until
    either moves. 404 unless it is one of the learner's events over one of their
    formations."""
    found = _learner_formation(request.auth, id)
    event_id = _event_id(eventId)
    conflict_dismiss(user=request.auth, formation_id=found.pk, event_id=event_id)
    return _conflict(request, found, event_id)


@router.delete(DISMISSAL, response={200: ConflictOut, **ERRORS}, by_alias=True)
def restore_conflict(request: HttpRequest, id: str, eventId: str) -> ConflictOut:
    """The conflict is flagged again."""
    found = _learner_formation(request.auth, id)
    event_id = _event_id(eventId)
    conflict_restore(user=request.auth, formation_id=found.pk, event_id=event_id)
    return _conflict(request, found, event_id)


@router.api_operation(
    ["GET", "POST", "PUT", "PATCH", "DELETE"],
    "/{path:rest}",
    auth=None,
    include_in_schema=False,
)
def not_found(request: HttpRequest, rest: str) -> None:
    """Unknown paths under the API answer in the API's format, not with an HTML page."""
    raise Http404
