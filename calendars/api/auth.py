"""Who calls: a personal API token, or the signed-in session with its CSRF check."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from accounts.services import api_token_authenticate
from accounts.throttling import client_ip, token_failed


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
        user = api_token_authenticate(token=token, address=client_ip(request))
        if user is None:  # a wrong token is an error, not a reason to try the session
            # Counted against the address: past the limit, axes answers 429 in the API's
            # format (accounts.throttling.locked_out). A valid token is never refused: it is
            # 256 random bits, which no one guesses, and a script is not locked out by others
            # sharing its address; so a valid token's request pays no lock query.
            token_failed(request)
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
