"""The security log: who connected, disconnected or lost what, who failed to sign in, which API
token turned up from a new address, what staff did to a learner's calendars.

One model (`SecurityEvent`) and Django's own signals, rather than a model-history library
such as django-auditlog: most entries are not changes to a row (a refused OAuth callback, a
failed sign-in, a token used from a new address), and a row's diff would have to be filtered
of its encrypted credentials anyway. Each entry is also written to the `security` logger as
one JSON line, for log collectors.

Entries hold codes, names and addresses: never a token, code, password or key. Recorders
pass `detail` as a short code of ours, not a provider's message.

The request being served (its address, and who is signed in) is kept in a context variable by
`SecurityContextMiddleware`, so that services record without being handed the request;
outside a request (tasks, commands) an entry has no address.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import SecurityEvent
from accounts.throttling import API_TOKEN_USERNAME, client_ip

logger = logging.getLogger("security")
Kind = SecurityEvent.Kind

# How a learner signed in, by the backend's class name.
SIGN_IN_BACKENDS = {
    "ModelBackend": "password",
    "GoogleSignIn": "google",
    "MicrosoftSignIn": "microsoft",
}

_request: ContextVar[HttpRequest | None] = ContextVar("security_request", default=None)


class SecurityContextMiddleware:
    """Makes the request's address and signed-in user known to `security_event_record`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        reset = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(reset)


def _address_of(request: HttpRequest | None) -> str | None:
    return (client_ip(request) or None) if request is not None else None


def _current_address() -> str | None:
    return _address_of(_request.get())


def _current_user() -> Any | None:
    request = _request.get()
    user = getattr(request, "user", None) if request is not None else None
    return user if user is not None and user.is_authenticated else None


def _cut(value: str, field: str) -> str:
    return value[: SecurityEvent._meta.get_field(field).max_length]


def security_event_record(
    *,
    kind: str,
    user: Any | None = None,
    user_id: int | None = None,
    actor: Any | None = None,
    service: str = "",
    account: str = "",
    detail: str = "",
    address: str | None = None,
) -> SecurityEvent:
    """Records one entry and logs it. `actor`: who acted, when not the account's owner (by
    default the signed-in user of the request, if it is someone else); `address`: by
    default the request's."""
    user_id = user.pk if user is not None else user_id
    actor = actor or _current_user()
    actor_id = actor.pk if actor is not None and actor.pk != user_id else None
    event = SecurityEvent.objects.create(
        kind=kind,
        user_id=user_id,
        actor_id=actor_id,
        address=address or _current_address(),
        service=_cut(service, "service"),
        account=_cut(account, "account"),
        detail=_cut(detail, "detail"),
    )
    logger.info(
        json.dumps(
            {
                "event": kind,
                "user": user_id,
                "actor": actor_id,
                "address": event.address,
                "service": event.service,
                "account": event.account,
                "detail": event.detail,
            },
            ensure_ascii=False,
        )
    )
    return event


def security_log_prune(*, now: Any = None) -> int:
    """Forgets entries older than SECURITY_LOG_RETENTION_DAYS; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SECURITY_LOG_RETENTION_DAYS)
    return SecurityEvent.objects.filter(occurred_at__lt=cutoff).delete()[0]


def _account_named(username: Any) -> Any | None:
    """The user an attempted sign-in names, if any: the attempt is theirs to see."""
    if not isinstance(username, str) or not username:
        return None
    User = get_user_model()
    return User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()


@receiver(user_logged_in, dispatch_uid="security_signed_in")
def _signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    backend = (getattr(user, "backend", "") or "").rsplit(".", 1)[-1]
    detail = SIGN_IN_BACKENDS.get(backend, backend)
    security_event_record(
        kind=Kind.SIGNED_IN,
        user=user,
        actor=user,
        detail=detail,
        address=_address_of(request),
    )


@receiver(user_login_failed, dispatch_uid="security_sign_in_failed")
def _sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # The name typed is kept only when it is an account's: an unknown one may be a password
    # typed in the wrong box.
    username = credentials.get("username")
    if isinstance(username, str) and username.startswith(API_TOKEN_USERNAME):
        user, detail = None, "api_token"
    else:
        user = _account_named(username)
        detail = "password" if user is not None else "unknown_account"
    security_event_record(
        kind=Kind.SIGN_IN_FAILED,
        user=user,
        detail=detail,
        address=_address_of(request),
    )


@receiver(user_locked_out, dispatch_uid="security_locked_out")
def _locked_out(
    sender: Any, request: HttpRequest | None, username: Any = None, **kwargs: Any
) -> None:
    api = isinstance(username, str) and username.startswith(API_TOKEN_USERNAME)
    security_event_record(
        kind=Kind.SIGN_IN_LOCKED,
        user=None if api else _account_named(username),
        detail="api_token" if api else "",
        address=_address_of(request),
    )


# What a learner is shown of an entry's `detail` (staff see the code itself in the admin).
DETAILS = {
    Kind.SIGNED_IN: {
        "password": _("avec le mot de passe"),
        "google": _("avec Google"),
        "microsoft": _("avec Microsoft"),
    },
    Kind.SIGN_IN_FAILED: {
        "password": _("mot de passe incorrect"),
        "api_token": _("jeton d'accès API invalide"),
    },
    Kind.OAUTH_REFUSED: {
        "invalid_state": _("lien de retour inconnu ou déjà utilisé"),
        "other_learner": _("lien de retour ouvert avec un autre compte"),
        "expired_state": _("lien de retour expiré"),
        "denied": _("accès refusé chez le fournisseur"),
        "missing_scope": _("autorisation non accordée"),
        "admin_approval_required": _("l'administrateur de votre organisation doit approuver"),
        "provider_error": _("réponse inattendue du fournisseur"),
        "service_unavailable": _("service momentanément indisponible"),
        "wrong_password": _("identifiant ou mot de passe refusé par le serveur"),
        "not_caldav": _("adresse qui n'est pas celle d'un serveur d'agenda"),
    },
    Kind.GRANT_LOST: {
        "missing_scope": _("une autorisation a été retirée"),
    },
    Kind.STAFF_ACTION: {
        "sync_now": _("synchronisation demandée"),
        "settings_changed": _("réglages modifiés"),
        "refresh_tokens": _("accès renouvelé"),
        "mark_needs_reconnect": _("marqué « à reconnecter »"),
        "disconnect": _("déconnexion"),
    },
}
# Kinds whose detail is already fit to show: an API token's name and start.
SHOWN_AS_IS = {Kind.API_TOKEN_CREATED, Kind.API_TOKEN_NEW_ADDRESS, Kind.API_TOKEN_REVOKED}


def security_event_describe(event: SecurityEvent) -> str:
    """The entry in a sentence fragment for its learner: the service, the account, why."""
    parts = [gettext(event.service)] if event.service else []
    if event.account:
        parts.append(event.account)
    if event.kind in SHOWN_AS_IS:
        parts.append(event.detail)
    elif event.detail in DETAILS.get(event.kind, {}):
        parts.append(str(DETAILS[event.kind][event.detail]))
    return " · ".join(parts)
