"""The JSON API under /api/calendar-integration/, with the product's existing paths and names.

Callers authenticate with their session (CSRF is checked on unsafe methods) or with a personal
token (`Authorization: Bearer fcal_...`, created on the "Accès API" settings page). Every error
is `{"error": {"code": ..., "message": ...}}`; no answer ever holds a token or a code.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern
from django.utils.translation import gettext as _
from ninja import Field, NinjaAPI, Router, Schema
from ninja.errors import HttpError, ValidationError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf
from pydantic import BeforeValidator, ConfigDict, StrictBool

from accounts.services import api_token_authenticate
from calendars.agenda import (
    FORMATION,
    MAX_DAY,
    MIN_DAY,
    AgendaItem,
    agenda_items,
    learner_zone,
    parse_day,
)
from calendars.errors import ProviderError, ReconnectRequired, Refused
from calendars.models import CalendarIntegration, SyncRun
from calendars.providers.names import PROVIDERS
from calendars.selectors import learner_integration
from calendars.services.connection import (
    integration_connect_finish,
    integration_connect_start,
    integration_redirect_uri,
    integration_update_settings,
)
from calendars.services.lifecycle import integration_disconnect
from calendars.sync.runs import formation_export
from calendars.tasks import dispatch_sync, run_now
from formations.models import Formation

logger = logging.getLogger(__name__)


class ApiError(HttpError):
    """An error with its machine-readable code; the message is for people."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(status_code, message)
        self.code = code


# --- authentication ---------------------------------------------------------------------


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <personal API token>`."""

    def __call__(self, request: HttpRequest) -> Any | None:
        # Not HttpBearer.__call__: with DEBUG on, it logs a malformed header, token included.
        scheme, _space, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        user = api_token_authenticate(token=token)
        if user is None:  # a wrong token is an error, not a reason to try the session
            raise ApiError(401, "invalid_token", _("Ce jeton d'accès est inconnu ou révoqué."))
        return user


class SessionAuth(APIKeyCookie):
    """The signed-in session, with Django's CSRF check on unsafe methods.

    Unlike ninja's own SessionAuth, a visitor without a session gets 401, not a CSRF 403.
    """

    param_name = settings.SESSION_COOKIE_NAME

    def __call__(self, request: HttpRequest) -> Any | None:
        if not request.user.is_authenticated:
            return None
        if check_csrf(request) is not None:
            raise ApiError(
                403,
                "csrf_failed",
                _("La vérification CSRF a échoué : envoyez l'en-tête X-CSRFToken."),
            )
        return request.user

    def authenticate(self, request: HttpRequest, key: str | None) -> Any | None:
        return request.user if request.user.is_authenticated else None  # pragma: no cover


api = NinjaAPI(
    title="Formations — calendar integration",
    version="1",
    description=(
        "Connect, configure and disconnect a learner's Google and Outlook calendars. "
        "Authenticate with your session or with `Authorization: Bearer <token>`, a personal "
        "token created in Paramètres › Accès API."
    ),
    auth=[TokenAuth(), SessionAuth()],
    urls_namespace="api",
)
router = Router(tags=["calendar-integration"])


# --- schemas ----------------------------------------------------------------------------


class AuthUrlOut(Schema):
    authUrl: str  # the product's JSON name


class CallbackIn(Schema):
    """The query the provider sent the browser back with."""

    code: str | None = Field(None, max_length=4096)
    state: str = Field(max_length=128)
    error: str | None = Field(None, max_length=200)


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
    error: str  # empty when it succeeded

    @classmethod
    def of(cls, run: SyncRun | None) -> RunOut | None:
        if run is None:
            return None
        return cls(
            trigger=run.trigger, direction=run.direction, started_at=run.started_at,
            finished_at=run.finished_at, created=run.created, updated=run.updated,
            deleted=run.deleted, skipped=run.skipped, error=run.error,
        )  # fmt: skip


class IntegrationOut(Schema):
    """An integration as the product's clients know it. No credential, ever."""

    type: str
    account_email: str = Field(serialization_alias="accountEmail")
    account_name: str = Field(serialization_alias="accountName")
    status: str
    import_: bool = Field(serialization_alias="import")
    export: bool
    sync: bool
    scopes: list[str]
    connected_at: datetime = Field(serialization_alias="connectedAt")
    last_sync_at: datetime | None = Field(serialization_alias="lastSyncAt")
    last_error: str = Field(serialization_alias="lastError")
    last_run: RunOut | None = Field(serialization_alias="lastRun")

    @classmethod
    def of(cls, integration: CalendarIntegration) -> IntegrationOut:
        return cls(
            type=integration.provider,
            account_email=integration.account_email,
            account_name=integration.account_name,
            status=integration.status,
            import_=integration.import_enabled,
            export=integration.export_enabled,
            sync=integration.sync_enabled,
            scopes=integration.scopes,
            connected_at=integration.connected_at,
            last_sync_at=integration.last_synced_at,
            last_error=integration.last_error,
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

    @classmethod
    def of(cls, item: AgendaItem, request: HttpRequest) -> AgendaItemOut:
        formation = item.source == FORMATION
        return cls(
            id=item.key,
            title=item.title,
            start=item.first_day if item.all_day else item.start,
            end=item.end_day if item.all_day else item.end,
            all_day=item.all_day,
            source=item.source,
            calendar=item.calendar,
            external_id=item.external_id,
            url=(request.build_absolute_uri(item.url) if formation else item.url) or None,
        )


class ErrorDetail(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    error: ErrorDetail


ERRORS: dict[int | str, Any] = {code: ErrorOut for code in (400, 401, 403, 404)}


# --- operations -------------------------------------------------------------------------


def _provider(name: str) -> str:
    if name not in PROVIDERS:
        raise ApiError(404, "unknown_provider", _("Ce fournisseur de calendrier n'existe pas."))
    return name


def _integration(request: HttpRequest, provider: str) -> CalendarIntegration:
    return learner_integration(request.auth, _provider(provider))


@router.get(
    "/{provider}/auth-url", response={200: AuthUrlOut, **ERRORS, 502: ErrorOut, 503: ErrorOut}
)
def auth_url(request: HttpRequest, provider: str) -> dict[str, str]:
    """Starts a connection: send the learner's browser to `authUrl`. The flow is valid
    10 minutes, bound to the caller and single-use."""
    url = integration_connect_start(
        user=request.auth,
        provider_name=_provider(provider),
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
        provider_name=_provider(provider),
        params=payload.model_dump(exclude_none=True),
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
    "/integrations/{type}/settings", response={200: IntegrationOut, **ERRORS}, by_alias=True
)
def update_settings(request: HttpRequest, type: str, payload: SettingsIn) -> IntegrationOut:
    integration = integration_update_settings(
        integration=_integration(request, type),
        import_enabled=payload.import_,
        export_enabled=payload.export,
        sync_enabled=payload.sync,
    )
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
        raise ReconnectRequired(integration.last_error or "The integration needs reconnecting.")
    run = run_now(integration.pk, SyncRun.Trigger.MANUAL, direction=SyncRun.Direction.IMPORT)
    if run is None:
        raise ApiError(
            503,
            "sync_in_progress",
            _("Une synchronisation de cet agenda est en cours ; réessayez dans un instant."),
        )
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
    if text.isdigit():
        found = formations.filter(pk=int(text)).first()
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
        raise ApiError(
            503,
            "export_pending",
            _("L'export n'a pas pu aboutir pour l'instant ; il sera repris automatiquement."),
        )
    row = integration.exports.get(formation_uid=formation.uid)
    status = "created" if result.created else "updated" if result.updated else "unchanged"
    return {"eventId": event_id, "calendarId": row.calendar_external_id, "status": status}


@router.get("/events", response={200: list[AgendaItemOut], **ERRORS}, by_alias=True)
def events(request: HttpRequest, start: IsoDay, end: IsoDay) -> list[AgendaItemOut]:
    """The learner's imported events and formations overlapping the days [start, end) in their
    time zone (at most 366 days), in date order. Cancelled events and formations are left
    out."""
    if end <= start:
        raise ApiError(400, "invalid_range", _("La date de fin doit suivre la date de début."))
    if (end - start).days > EVENTS_MAX_DAYS:
        raise ApiError(400, "range_too_long", _("La période demandée ne peut dépasser 366 jours."))
    items = agenda_items(user=request.auth, start=start, end=end, zone=learner_zone(request.auth))
    return [AgendaItemOut.of(item, request) for item in items if not item.cancelled]


@router.api_operation(
    ["GET", "POST", "PUT", "PATCH", "DELETE"],
    "/{path:rest}",
    auth=None,
    include_in_schema=False,
)
def not_found(request: HttpRequest, rest: str) -> None:
    """Unknown paths under the API answer in the API's format, not with an HTML page."""
    raise Http404


api.add_router("/calendar-integration", router)


# --- errors -----------------------------------------------------------------------------


def _error(
    request: HttpRequest, status: int, code: str, message: str, **extra: Any
) -> HttpResponse:
    return api.create_response(
        request, {"error": {"code": code, "message": str(message), **extra}}, status=status
    )


def _messages() -> dict[int, tuple[str, str]]:
    return {
        400: ("malformed_request", _("Le corps de la requête n'est pas un JSON valide.")),
        401: ("not_authenticated", _("Authentification requise : session ou jeton d'accès.")),
        403: ("forbidden", _("Accès refusé.")),
        404: ("not_found", _("Introuvable.")),
        405: ("method_not_allowed", _("Méthode non autorisée sur cette adresse.")),
        429: ("throttled", _("Trop de requêtes. Réessayez dans un instant.")),
    }


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc, ApiError):
        response = _error(request, exc.status_code, exc.code, exc.message)
    else:  # ninja's own messages are English and may quote the request: ours instead
        code, message = _messages().get(exc.status_code, ("error", _("La requête a échoué.")))
        response = _error(request, exc.status_code, code, message)
    if exc.status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, *_messages()[404])


def _field(location: tuple[Any, ...]) -> str:
    """The field as the client named it: ("body", "payload", "import") is "import"."""
    parts = location[2:] if location[0] == "body" else location[1:]
    return ".".join(str(part) for part in parts)


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields = [{"field": _field(error["loc"]), "message": error["msg"]} for error in exc.errors]
    return _error(
        request,
        400,
        "invalid_input",
        _("Certains champs sont manquants ou invalides."),
        fields=fields,
    )


@api.exception_handler(Refused)
def _refused(request: HttpRequest, exc: Refused) -> HttpResponse:
    # The learner's or the client's mistakes are 400; the provider's failures are not.
    status = {"unavailable": 503, "provider_error": 502}.get(exc.code, 400)
    return _error(request, status, exc.code, exc.message)


@api.exception_handler(ProviderError)
def _provider_error(request: HttpRequest, exc: ProviderError) -> HttpResponse:
    logger.warning("Provider error in the API: %s", exc.message)
    if isinstance(exc, ReconnectRequired):
        return _error(
            request,
            409,
            "needs_reconnect",
            _("L'accès à ce calendrier a été retiré : reconnectez-le."),
        )
    response = _error(
        request,
        502 if exc.permanent else 503,
        "provider_error",
        _("Le fournisseur de calendrier n'a pas répondu comme prévu. Réessayez plus tard."),
    )
    if exc.retry_after:
        response["Retry-After"] = str(int(exc.retry_after))
    return response


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("Unexpected error in the API")
    return _error(request, 500, "server_error", _("Erreur inattendue. Réessayez plus tard."))


# --- URLs -------------------------------------------------------------------------------

DOCS = {"openapi-json", "openapi-view"}


def _api_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """An operation's view as Django sees it: it answers 401 itself (LoginRequiredMiddleware
    must not redirect to the sign-in page), and a wrong method is a JSON 405 too."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and not _is_json(response):
            allow = response.get("Allow", "")
            response = _error(request, 405, *_messages()[405])
            response["Allow"] = allow
        return response

    return login_not_required(wrapper)


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


@functools.cache  # the patterns are wrapped once
def urls() -> tuple[list[Any], str, str]:
    """The API's URL patterns. The docs (/api/docs, /api/openapi.json) stay behind the sign-in
    page like every other page; the operations are open and check credentials themselves."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if pattern.name == "api-root":  # ninja's is an HTML 404 that names the docs' URL
            pattern.callback = _root
        if isinstance(pattern, URLPattern) and pattern.name not in DOCS:
            pattern.callback = _api_view(pattern.callback)
    return patterns, app_name, namespace


def _root(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return _error(request, 404, *_messages()[404])
