"""Limits on guessing: django-axes counts failed sign-ins and failed API tokens, per account
and per address, and refuses both for a while once they pass the limit (settings `AXES_*`).

Staff lift a lock in the admin (Axes › Access attempts: delete the rows of the account or the
address). The learner is told what happened and what to do; the API answers 429 in its own
format.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

API_PREFIX = "/api/"
# The name a wrong API token is counted under, followed by the address.
API_TOKEN_USERNAME = "api-token@"  # noqa: S105  (a name, not a secret)


def client_ip(request: HttpRequest) -> str:
    """The visitor's address. Behind our TLS proxy (BEHIND_TLS_PROXY), the last address of
    X-Forwarded-For, the one the proxy added: earlier ones are the client's to write. Without
    it, every learner would share the proxy's address, and a lock on it would lock them all."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.BEHIND_TLS_PROXY and forwarded.strip():
        return forwarded.split(",")[-1].strip()
    return str(request.META.get("REMOTE_ADDR", ""))


def _minutes() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))


def locked_out(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """What a locked account or address gets: the sign-in page saying so, or the API's 429."""
    if request.path.startswith(API_PREFIX):
        body = {"error": {"code": "throttled", "message": _throttled_message()}}
        return HttpResponse(
            json.dumps(body),
            status=429,
            content_type="application/json",
            headers={"Retry-After": str(_minutes() * 60)},
        )
    context = {"form": AuthenticationForm(request), "locked_message": _locked_message()}
    return render(request, "registration/login.html", context, status=429)


def _locked_message() -> str:
    return _(
        "Trop de tentatives de connexion ont échoué : la connexion est bloquée pendant "
        "%(minutes)d minutes. Réessayez ensuite, ou réinitialisez votre mot de passe."
    ) % {"minutes": _minutes()}


def _throttled_message() -> str:
    return _(
        "Trop de tentatives avec un jeton d'accès invalide : réessayez dans %(minutes)d "
        "minutes avec un jeton valide."
    ) % {"minutes": _minutes()}


def _token_credentials(request: HttpRequest) -> dict[str, str]:
    # A wrong token names no account: it is counted against the address alone (a name of its
    # own per address, so that no shared name gets locked for everyone). The token itself is
    # never recorded.
    return {"username": API_TOKEN_USERNAME + client_ip(request)}


def token_failed(request: HttpRequest) -> None:
    """Counts a wrong API token against the address, as a failed sign-in counts."""
    user_login_failed.send(
        sender=__name__, credentials=_token_credentials(request), request=request
    )
