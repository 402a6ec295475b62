"""Limits on guessing: django-axes counts failed sign-ins and failed API tokens, per account
and per address, and refuses both for a while once they pass the limit (settings `AXES_*`).
Before the limit, sign-ins are slowed: past SIGN_IN_SLOW_AFTER failures, the next try is
refused until a wait that doubles with each failure has passed (`SlowingHandler`). Nothing
sleeps: a wait held in a web process would let a flood of guesses occupy every worker.

Staff lift a lock in the admin (Axes › Access attempts: delete the rows of the account or the
address). The learner is told what happened and what to do; the API answers 429 in its own
format.
"""

from __future__ import annotations

import json
import math
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

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


# The longest wait between two sign-in tries before the lock itself.
SLOWED_WAIT_MAX = 60


class SlowingHandler(AxesDatabaseHandler):
    """axes' own handler, plus the waits before the lock: after `n` failures (n past
    SIGN_IN_SLOW_AFTER), the account or address may try again 2**(n - SIGN_IN_SLOW_AFTER)
    seconds after its last failure, at most SLOWED_WAIT_MAX. A try made sooner is refused
    (and counted, like any failure)."""

    def is_allowed(self, request: Any, credentials: dict[str, Any] | None = None) -> bool:
        if not super().is_allowed(request, credentials):
            return False
        wait = self.slowed_for(request, credentials)
        if wait:  # answered by `locked_out`, saying how long to wait
            request.axes_slowed_for = wait
            request.axes_locked_out = True
            return False
        return True

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
    ) -> None:
        super().user_login_failed(sender, credentials, request, **kwargs)
        slowed = request is not None and getattr(request, "axes_slowed_for", 0)
        if slowed and self.is_locked(request, credentials):
            request.axes_slowed_for = 0  # that failure reached the limit: locked, not slowed

    def slowed_for(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        """Seconds before the next try is allowed; 0: now. Counted as axes counts
        (`get_failures`), with the last failure's time from the same query."""
        found = [
            attempts.aggregate(n=Sum("failures_since_start"), last=Max("attempt_time"))
            for attempts in self.get_user_attempts(request, credentials)
        ]
        failures = max((row["n"] or 0 for row in found), default=0)
        last = max((row["last"] for row in found if row["last"] is not None), default=None)
        if failures < settings.SIGN_IN_SLOW_AFTER or last is None:
            return 0
        delay = min(SLOWED_WAIT_MAX, 2 ** (failures - settings.SIGN_IN_SLOW_AFTER))
        remaining = delay - (timezone.now() - last).total_seconds()
        return math.ceil(remaining) if remaining > 0 else 0


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
    slowed = getattr(request, "axes_slowed_for", 0)
    message = _slowed_message(slowed) if slowed else _locked_message()
    context = {"form": AuthenticationForm(request), "locked_message": message}
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(slowed or _minutes() * 60)
    return response


def _slowed_message(seconds: int) -> str:
    return ngettext(
        "Plusieurs tentatives de connexion ont échoué : attendez %(seconds)d seconde avant "
        "de réessayer. Mot de passe oublié ? Réinitialisez-le.",
        "Plusieurs tentatives de connexion ont échoué : attendez %(seconds)d secondes avant "
        "de réessayer. Mot de passe oublié ? Réinitialisez-le.",
        seconds,
    ) % {"seconds": seconds}


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
