"""The NinjaAPI: its authentication, its router, its errors in one JSON shape, its URLs."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError

from calendars.api.auth import ApiError, SessionAuth, TokenAuth
from calendars.api.operations import router
from calendars.errors import ProviderError, Refused
from calendars.failures import failure_of

logger = logging.getLogger(__name__)


class _Api(NinjaAPI):
    def get_openapi_operation_id(self, operation: Any) -> str:
        """The ids the schema has always given (the endpoints once lived in calendars/api.py),
        whichever module of the package defines them now."""
        return f"calendars_api_{operation.view_func.__name__}"


api = _Api(
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
        413: (
            "payload_too_large",
            _("Le corps de la requête est trop volumineux : envoyez moins de données à la fois."),
        ),
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


@api.exception_handler(RequestDataTooBig)
def _too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    # Over DATA_UPLOAD_MAX_MEMORY_SIZE: Django refuses to read it.
    return _error(request, 413, *_messages()[413])


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
    status = {"unavailable": 503, "service_unavailable": 503, "provider_error": 502}.get(
        exc.code, 400
    )
    return _error(request, status, exc.code, exc.message)


@api.exception_handler(ProviderError)
def _provider_error(request: HttpRequest, exc: ProviderError) -> HttpResponse:
    """The catalogue's code and sentence; the provider's own words go to the log."""
    logger.warning("Provider error in the API: %s", exc.message)
    failure = failure_of(exc)
    if failure.action.reconnects:
        status = 409  # the learner must give their consent again
    elif failure.code == "service_unavailable":  # the operator's to fix
        status = 503
    else:
        status = 502 if failure.permanent else 503
    response = _error(request, status, failure.code, failure.message)
    if exc.retry_after and not failure.permanent:
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
