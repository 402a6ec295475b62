"""Connecting a learner's calendar account: the OAuth flow, the list of calendars and the
learner's choices among them."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from accounts.models import SecurityEvent
from accounts.security import security_event_record
from calendars.errors import (
    AppCredentialsRejected,
    AuthorizationDenied,
    ProviderError,
    Refused,
    ScopeMissing,
)
from calendars.failures import refused
from calendars.locking import lock_rows
from calendars.models import (
    MISSING_SCOPE,
    OAUTH_STATE_LIFETIME,
    Calendar,
    CalendarIntegration,
    OAuthState,
)
from calendars.providers import get_provider
from calendars.providers.names import PROVIDERS
from calendars.services.credentials import integration_call, integration_mark_needs_reconnect
from calendars.services.faults import provider_fault_clear, provider_fault_record, provider_faults

logger = logging.getLogger(__name__)
HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{3,8}")


def integration_redirect_uri(*, provider_name: str, absolute: Callable[[str], str]) -> str:
    """Where the provider sends the learner back: the configured address, else the callback
    page on the host that started the flow (`absolute` makes a path absolute)."""
    configured = {"google": settings.GOOGLE_REDIRECT_URI, "outlook": settings.OUTLOOK_REDIRECT_URI}
    return configured.get(provider_name) or absolute(
        reverse("calendars:callback", args=[provider_name])
    )


def integration_connect_start(
    *,
    user: Any,
    provider_name: str,
    redirect_uri: str,
    login_hint: str = "",
    missing_only: bool = False,
) -> str:
    """Records a new flow for `user` and returns the provider URL to send the browser to;
    `missing_only`: asks for just the permissions the learner's integration lacks."""
    if not PROVIDERS[provider_name].is_configured():
        raise refused("unavailable")
    if provider_name in provider_faults():
        raise _service_unavailable(provider_name)
    provider = get_provider(provider_name)
    _purge_expired_states()
    state = OAuthState(user=user, provider=provider_name, redirect_uri=redirect_uri)
    try:
        authorization = provider.oauth.start(
            redirect_uri=redirect_uri,
            state=state.state,
            login_hint=login_hint,
            missing_only=missing_only,
        )
    except ProviderError as error:
        logger.warning("Connect start failed for %s: %s", provider_name, error.message)
        raise refused(
            "provider_error",
            _("Le service du fournisseur est injoignable. Réessayez dans un instant."),
        ) from None
    state.set_flow(authorization.flow)
    state.save()
    return authorization.url


def integration_connect_finish(
    *, user: Any, provider_name: str, params: dict[str, str]
) -> CalendarIntegration:
    """Completes a flow from the provider's callback query (`code`, `state` or `error`).

    The flow state is consumed first, whatever happens next: a replayed callback finds
    nothing. Nothing is stored unless the provider hands over working credentials. A refusal
    goes to the security log with its reason; so does the connection.
    """
    try:
        return _connect_finish(user=user, provider_name=provider_name, params=params)
    except Refused as error:
        security_event_record(
            kind=SecurityEvent.Kind.OAUTH_REFUSED,
            user=user,
            service=PROVIDERS[provider_name].label,
            detail=error.log_detail or error.code,
        )
        raise


@sensitive_variables("params", "grant")
def _connect_finish(
    *, user: Any, provider_name: str, params: dict[str, str]
) -> CalendarIntegration:
    with transaction.atomic():
        state = (
            lock_rows(OAuthState.objects)
            .filter(state=params.get("state") or "-", provider=provider_name)
            .first()
        )
        # On databases without row locks, the delete's count is what makes a replay lose.
        if state is not None and state.delete()[0] == 0:
            state = None
    if state is None:  # never issued, or already used: a replay
        raise refused("invalid_state")
    if state.user_id != user.pk:  # another learner's flow, finished in this browser
        raise Refused(refused("invalid_state").message, code="invalid_state",
                      log_detail="other_learner")  # fmt: skip
    if state.expired:
        raise refused("expired_state")
    if params.get("error"):
        if _needs_admin_approval(params):
            raise refused("admin_approval_required", admin_approval_message(provider_name))
        if params["error"] == "access_denied":
            raise refused(
                "denied", _("Vous avez refusé l'accès à votre agenda : rien n'a été connecté.")
            )
        raise refused("denied")

    provider = get_provider(provider_name)
    try:
        grant = provider.oauth.finish(
            flow=state.get_flow(), redirect_uri=state.redirect_uri, params=params
        )
    except AppCredentialsRejected as error:
        provider_fault_record(provider=provider_name, error=error)
        raise _service_unavailable(provider_name) from None
    except ScopeMissing:
        raise refused(
            "missing_scope",
            _(
                "Vous n'avez pas autorisé l'accès aux événements de votre agenda : rien n'a "
                "été connecté. Recommencez en laissant cochées les cases qui concernent votre "
                "agenda."
            ),
        ) from None
    except ProviderError as error:
        # What went wrong is for the logs: the learner is told what to do.
        logger.warning("Connect finish failed for %s: %s", provider_name, error.message)
        raise refused(
            "provider_error",
            _(
                "La connexion n'a pas abouti : le fournisseur n'a pas répondu comme prévu. "
                "Recommencez dans un instant."
            ),
        ) from None

    provider_fault_clear(provider=provider_name)  # the code was redeemed: the app is fine
    # A permission left unticked: connected, but told at once what is missing, with a button
    # that asks for it; no listing that could only be refused.
    return _connected(
        user=user,
        provider_name=provider_name,
        grant=grant,
        missing=bool(provider.oauth.missing_scopes(grant.scopes)),
    )


@sensitive_variables("password", "grant")
def integration_connect_password(
    *, user: Any, provider_name: str, url: str, username: str, password: str
) -> CalendarIntegration:
    """Connects a provider reached with a server address, a username and an (app-specific)
    password (CalDAV): checked with the server at once; refused, nothing is stored. A
    refusal goes to the security log, as a refused OAuth callback does."""
    info = PROVIDERS[provider_name]
    if info.connection != "password" or not info.is_configured():
        raise refused("unavailable")
    try:
        grant = get_provider(provider_name).oauth.sign_in(
            url=url, username=username, password=password
        )
    except AuthorizationDenied:
        code = "wrong_password"
    except ProviderError as error:
        logger.warning("Connect with a password failed for %s: %s", provider_name, error.message)
        code = "not_caldav" if error.permanent else "provider_error"
    else:
        return _connected(user=user, provider_name=provider_name, grant=grant, missing=False)
    security_event_record(
        kind=SecurityEvent.Kind.OAUTH_REFUSED,
        user=user,
        service=info.label,
        account=username,
        detail=code,
    )
    raise refused(code)


@sensitive_variables("grant")
def _connected(*, user: Any, provider_name: str, grant: Any, missing: bool) -> CalendarIntegration:
    """Stores a grant as the learner's integration with the provider (new, or replacing the
    previous one's credentials, their choices kept), then lists their calendars."""
    with transaction.atomic():
        _row, created = CalendarIntegration.objects.get_or_create(user=user, provider=provider_name)
        integration = lock_rows(CalendarIntegration.objects).get(user=user, provider=provider_name)
        _store_grant(integration, grant, missing_permission=missing)
        security_event_record(
            kind=SecurityEvent.Kind.INTEGRATION_CONNECTED
            if created
            else SecurityEvent.Kind.INTEGRATION_RECONNECTED,
            user=user,
            service=PROVIDERS[provider_name].label,
            account=grant.account_email,
            detail="missing_scope" if missing else "",
        )
    if missing:
        return integration
    try:
        integration_refresh_calendars(integration=integration)
    except ProviderError as error:  # connected all the same; listed again on the next visit
        logger.warning("Listing calendars failed for %s: %s", provider_name, error.message)
    return integration


# The identity platform's codes for "this organisation lets no member consent to this app":
# AADSTS90094 (the "Need admin approval" page), 90093, and 65001 (consent_required).
ADMIN_APPROVAL_CODES = re.compile(r"\bAADSTS(?:90094|90093|65001)\b")


def _needs_admin_approval(params: dict[str, str]) -> bool:
    return params.get("error") == "consent_required" or bool(
        ADMIN_APPROVAL_CODES.search(params.get("error_description", ""))
    )


def admin_approval_message(provider_name: str) -> str:
    """What a learner whose organisation must approve the application is told, with what to
    send the administrator."""
    return _(
        "Votre organisation ne permet pas à ses membres d'autoriser eux-mêmes une application "
        "à accéder à leur agenda %(provider)s : son administrateur Microsoft 365 doit d'abord "
        "approuver la nôtre. Envoyez-lui ces informations : identifiant d'application (client) "
        "%(client_id)s, adresse du site %(site)s, autorisations demandées Calendars.ReadWrite "
        "(lire et modifier vos agendas) et User.Read (lire votre profil). Il l'approuve dans le "
        "centre d'administration Microsoft Entra (Applications d'entreprise › Autorisations › "
        "Accorder le consentement administrateur). Ensuite, revenez ici et connectez votre "
        "agenda."
    ) % {
        "provider": PROVIDERS[provider_name].title,
        "client_id": settings.OUTLOOK_CLIENT_ID,
        "site": settings.SITE_URL,
    }


def _service_unavailable(provider_name: str) -> Refused:
    return refused(
        "service_unavailable",
        _(
            "La connexion à %(provider)s est momentanément indisponible, à cause d'un réglage "
            "de notre côté que l'équipe doit corriger. Vous n'avez rien à faire : réessayez "
            "plus tard."
        )
        % {"provider": PROVIDERS[provider_name].title},
    )


@sensitive_variables("grant")
def _store_grant(
    integration: CalendarIntegration, grant: Any, *, missing_permission: bool = False
) -> None:
    now = timezone.now()
    integration.account_email = grant.account_email
    integration.account_name = grant.account_name
    integration.scopes = grant.scopes
    integration.set_credentials(grant.credentials)
    integration.token_expires_at = grant.expires_at
    integration.connected_at = now
    if missing_permission:
        integration.status = CalendarIntegration.Status.NEEDS_RECONNECT
        integration.reconnect_reason = MISSING_SCOPE
        integration.last_error_code = "missing_scope"
        integration.last_error = "The calendar list permission was not granted."
        integration.last_error_at = now
    else:
        integration.status = CalendarIntegration.Status.CONNECTED
        integration.reconnect_reason = integration.last_error_code = ""
        integration.last_error = ""
        integration.last_error_at = None
    integration.save()


def integration_refresh_calendars(*, integration: CalendarIntegration) -> list[Calendar]:
    """Brings the list of calendars up to date with the provider.

    New calendars are not imported, except the primary one on first listing; the primary one
    receives formations unless the learner chose another writable calendar. Calendars gone at
    the provider are forgotten.
    """
    provider = get_provider(integration.provider)
    try:
        listed = integration_call(integration=integration, call=provider.calendars.list_calendars)
    except ScopeMissing as error:  # the learner took the calendar list back
        integration_mark_needs_reconnect(
            integration=integration, reason=error.message, code=MISSING_SCOPE
        )
        raise
    with transaction.atomic():
        known = {c.external_id: c for c in lock_rows(integration.calendars.all())}
        first_listing = not known
        kept = []
        for info in listed:
            calendar = known.pop(info.external_id, None) or Calendar(
                integration=integration,
                external_id=info.external_id,
                import_enabled=first_listing and info.primary,
            )
            calendar.name = info.name or info.external_id
            # Shown in a style attribute: only a plain hex colour, never other CSS.
            calendar.color = info.color if HEX_COLOUR.fullmatch(info.color or "") else ""
            calendar.time_zone = info.time_zone
            calendar.is_primary = info.primary
            calendar.can_edit = info.can_edit
            if not calendar.can_edit:
                calendar.is_export_target = False
            calendar.save()
            kept.append(calendar)
        Calendar.objects.filter(pk__in=[c.pk for c in known.values()]).delete()
        if not any(c.is_export_target for c in kept):
            target = next((c for c in kept if c.is_primary and c.can_edit), None)
            if target is not None:
                target.is_export_target = True
                target.save(update_fields=["is_export_target", "updated_at"])
    return kept


def integration_choose_calendars(
    *, integration: CalendarIntegration, imported: set[int], export_target: int | None
) -> None:
    """The learner's choice of calendars to import and of the one receiving formations.

    Ids of other integrations' calendars are ignored; a read-only calendar cannot receive.
    """
    with transaction.atomic():
        calendars = list(lock_rows(integration.calendars.all()))
        target = next((c for c in calendars if c.pk == export_target and c.can_edit), None)
        if export_target is not None and target is None:
            raise refused(
                "calendar_read_only",
                _("Ce calendrier est en lecture seule : il ne peut pas recevoir vos formations."),
            )
        for calendar in calendars:
            if calendar.pk in imported and not calendar.import_enabled:
                # Listed until now only for the formations it receives: its sync token
                # skips the events that were there before. Import it all.
                calendar.sync_token = calendar.resume_from = ""
            calendar.import_enabled = calendar.pk in imported
            calendar.is_export_target = False
        Calendar.objects.bulk_update(
            calendars, ["import_enabled", "is_export_target", "sync_token", "resume_from"]
        )
        if target is not None:
            Calendar.objects.filter(pk=target.pk).update(is_export_target=True)


def calendars_show(*, user: Any, shown: set[int]) -> None:
    """Shows the calendars of `shown` on `user`'s calendar page and hides their others (their
    events stay imported)."""
    mine = Calendar.objects.filter(integration__user=user)
    mine.filter(pk__in=shown).exclude(shown=True).update(shown=True)
    mine.exclude(pk__in=shown).exclude(shown=False).update(shown=False)


def integration_update_settings(
    *,
    integration: CalendarIntegration,
    import_enabled: bool | None = None,
    export_enabled: bool | None = None,
    sync_enabled: bool | None = None,
) -> CalendarIntegration:
    changes = {
        "import_enabled": import_enabled,
        "export_enabled": export_enabled,
        "sync_enabled": sync_enabled,
    }
    fields = [name for name, value in changes.items() if value is not None]
    for name in fields:
        setattr(integration, name, changes[name])
    if fields:
        integration.save(update_fields=[*fields, "updated_at"])
    return integration


def _purge_expired_states() -> None:
    OAuthState.objects.filter(created_at__lt=timezone.now() - OAUTH_STATE_LIFETIME).delete()
