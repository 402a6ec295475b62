"""Connecting, using and disconnecting calendar integrations: the verbs that views, the API,
tasks and commands share."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from calendars.crypto import UndecryptableError
from calendars.models import OAUTH_STATE_LIFETIME, Calendar, CalendarIntegration, OAuthState
from calendars.providers import get_provider
from calendars.providers.base import ProviderError, ReconnectRequired, Unauthorized

logger = logging.getLogger(__name__)
HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{3,8}")


class ConnectError(Exception):
    """A connect flow that cannot complete; the message is for the learner."""

    def __init__(self, message: Any, *, code: str) -> None:
        super().__init__(str(message))
        self.message = message
        self.code = code


def integration_connect_start(
    *, user: Any, provider_name: str, redirect_uri: str, login_hint: str = ""
) -> str:
    """Records a new flow for `user` and returns the provider URL to send the browser to."""
    provider = get_provider(provider_name)
    if not provider.is_configured():
        raise ConnectError(_("Ce fournisseur n'est pas configuré."), code="unavailable")
    _purge_expired_states()
    state = OAuthState(user=user, provider=provider_name, redirect_uri=redirect_uri)
    try:
        authorization = provider.start(
            redirect_uri=redirect_uri, state=state.state, login_hint=login_hint
        )
    except ProviderError as error:
        logger.warning("Connect start failed for %s: %s", provider_name, error.message)
        raise ConnectError(
            _("Le service du fournisseur est injoignable. Réessayez dans un instant."),
            code="provider_error",
        ) from None
    state.set_flow(authorization.flow)
    state.save()
    return authorization.url


@sensitive_variables("params", "grant")
def integration_connect_finish(
    *, user: Any, provider_name: str, params: dict[str, str]
) -> CalendarIntegration:
    """Completes a flow from the provider's callback query (`code`, `state` or `error`).

    The flow state is consumed first, whatever happens next: a replayed callback finds
    nothing. Nothing is stored unless the provider hands over working credentials.
    """
    with transaction.atomic():
        state = (
            OAuthState.objects.select_for_update()
            .filter(state=params.get("state") or "-", provider=provider_name)
            .first()
        )
        # On databases without row locks, the delete's count is what makes a replay lose.
        if state is not None and state.delete()[0] == 0:
            state = None
    if state is None or state.user_id != user.pk:
        raise ConnectError(
            _("Cette demande de connexion est inconnue ou a déjà servi. Recommencez."),
            code="invalid_state",
        )
    if state.expired:
        raise ConnectError(
            _("Cette demande de connexion a expiré. Recommencez."), code="expired_state"
        )
    if params.get("error"):
        message = (
            _("Vous avez refusé l'accès à votre agenda : rien n'a été connecté.")
            if params["error"] == "access_denied"
            else _("Le fournisseur a refusé la connexion. Recommencez.")
        )
        raise ConnectError(message, code="denied")

    provider = get_provider(provider_name)
    try:
        grant = provider.finish(
            flow=state.get_flow(), redirect_uri=state.redirect_uri, params=params
        )
    except ProviderError as error:
        logger.warning("Connect finish failed for %s: %s", provider_name, error.message)
        raise ConnectError(
            _("La connexion n'a pas abouti (%(reason)s). Recommencez.") % {"reason": error.message},
            code="provider_error",
        ) from None

    with transaction.atomic():
        CalendarIntegration.objects.get_or_create(user=user, provider=provider_name)
        integration = CalendarIntegration.objects.select_for_update().get(
            user=user, provider=provider_name
        )
        _store_grant(integration, grant)
    try:
        integration_refresh_calendars(integration=integration)
    except ProviderError as error:  # connected all the same; listed again on the next visit
        logger.warning("Listing calendars failed for %s: %s", provider_name, error.message)
    return integration


@sensitive_variables("grant")
def _store_grant(integration: CalendarIntegration, grant: Any) -> None:
    integration.account_email = grant.account_email
    integration.account_name = grant.account_name
    integration.scopes = grant.scopes
    integration.set_credentials(grant.credentials)
    integration.token_expires_at = grant.expires_at
    integration.status = CalendarIntegration.Status.CONNECTED
    integration.last_error = ""
    integration.last_error_at = None
    integration.connected_at = timezone.now()
    integration.save()


@sensitive_variables("grant", "credentials")
def integration_access_token(*, integration: CalendarIntegration, force: bool = False) -> str:
    """A valid access token, refreshed when needed and saved.

    Refreshes of one integration are serialized by a row lock: Microsoft rotates refresh
    tokens, so a request must never use one that a concurrent refresh has just replaced. The
    outcome (new credentials, a lost grant, an error) is written under that same lock, so a
    reconnection made meanwhile is never overwritten by a stale failure.
    """
    failure: ProviderError | None = None
    with transaction.atomic():
        locked = (
            CalendarIntegration.objects.select_for_update()
            .defer("credentials")  # decrypted below, where a failure is handled
            .filter(pk=integration.pk)
            .first()
        )
        if locked is None:
            raise ReconnectRequired("The integration was disconnected.")
        if locked.needs_reconnect:
            raise ReconnectRequired(locked.last_error or "The integration needs reconnecting.")
        try:
            credentials = locked.get_credentials()
            grant = get_provider(locked.provider).access_token(credentials, force=force)
        except UndecryptableError:
            failure = ReconnectRequired("The stored credentials can no longer be read.")
        except ProviderError as error:
            failure = error
        if failure is not None:
            _record_failure(locked, failure)
        else:
            changed = grant.credentials != credentials
            if changed:
                locked.set_credentials(grant.credentials)
                locked.token_expires_at = grant.expires_at
            if changed or locked.status != CalendarIntegration.Status.CONNECTED:
                locked.status = CalendarIntegration.Status.CONNECTED
                locked.last_error = ""
                locked.last_error_at = None
                locked.save(update_fields=[*CREDENTIAL_FIELDS, *STATUS_FIELDS])
    for name in ("status", "last_error", "last_error_at", "token_expires_at"):
        setattr(integration, name, getattr(locked, name))
    if failure is not None:
        raise failure
    return grant.access_token


CREDENTIAL_FIELDS = ["credentials", "token_expires_at"]
STATUS_FIELDS = ["status", "last_error", "last_error_at", "updated_at"]


def _record_failure(integration: CalendarIntegration, failure: ProviderError) -> None:
    """A lost grant needs the learner; a permanent error is shown; a temporary one is noted."""
    if isinstance(failure, ReconnectRequired):
        integration.status = CalendarIntegration.Status.NEEDS_RECONNECT
    elif failure.permanent:
        integration.status = CalendarIntegration.Status.ERROR
    integration.last_error = failure.message
    integration.last_error_at = timezone.now()
    integration.save(update_fields=STATUS_FIELDS)


def integration_call[T](*, integration: CalendarIntegration, call: Callable[[str], T]) -> T:
    """Runs `call(access_token)`; on a 401, refreshes the token once and tries again."""
    token = integration_access_token(integration=integration)
    try:
        return call(token)
    except Unauthorized:
        token = integration_access_token(integration=integration, force=True)
        return call(token)


def integration_refresh_calendars(*, integration: CalendarIntegration) -> list[Calendar]:
    """Brings the list of calendars up to date with the provider.

    New calendars are not imported, except the primary one on first listing; the primary one
    receives formations unless the learner chose another writable calendar. Calendars gone at
    the provider are forgotten.
    """
    provider = get_provider(integration.provider)
    listed = integration_call(integration=integration, call=provider.list_calendars)
    with transaction.atomic():
        known = {c.external_id: c for c in integration.calendars.select_for_update()}
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
        calendars = list(integration.calendars.select_for_update())
        target = next((c for c in calendars if c.pk == export_target and c.can_edit), None)
        if export_target is not None and target is None:
            raise ValueError("This calendar cannot receive formations.")
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


def integration_mark_needs_reconnect(*, integration: CalendarIntegration, reason: str) -> None:
    """The grant is gone: the learner is told on every page; their data and choices stay."""
    CalendarIntegration.objects.filter(pk=integration.pk).exclude(
        status=CalendarIntegration.Status.NEEDS_RECONNECT
    ).update(
        status=CalendarIntegration.Status.NEEDS_RECONNECT,
        last_error=reason,
        last_error_at=timezone.now(),
    )
    integration.refresh_from_db(fields=["status", "last_error", "last_error_at"])


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


@sensitive_variables()
def integration_disconnect(
    *, integration: CalendarIntegration, remove_exported: bool = False
) -> None:
    """Closes the push channels, revokes the grant where the provider allows it, then erases
    the credentials; with `remove_exported`, takes the exported formations out of the
    learner's calendar first (best effort: the learner wants out whatever the provider
    says)."""
    from calendars.push import integration_channels_stop  # push builds on services

    integration_channels_stop(integration=integration)
    if remove_exported:
        from calendars.sync import integration_export_remove_all  # sync builds on services

        try:
            integration_export_remove_all(integration=integration)
        except ProviderError as error:
            logger.warning(
                "Removing exports of integration %s failed: %s", integration.pk, error.message
            )
    provider = get_provider(integration.provider)
    try:
        provider.revoke(integration.get_credentials())
    except UndecryptableError:
        logger.warning("Integration %s: credentials unreadable, not revoked", integration.pk)
    except ProviderError as error:  # the learner wants out: never keep them connected
        logger.warning("Revocation failed for integration %s: %s", integration.pk, error.message)
    integration.delete()


def _purge_expired_states() -> None:
    OAuthState.objects.filter(created_at__lt=timezone.now() - OAUTH_STATE_LIFETIME).delete()
