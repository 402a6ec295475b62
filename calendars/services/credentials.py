"""Access tokens: read from the encrypted credentials, refreshed when needed under the
integration's row lock, and the integration marked when the grant is lost."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import SecurityEvent
from accounts.security import security_event_record
from calendars.errors import (
    AppCredentialsRejected,
    CredentialsUnreadable,
    ProviderError,
    ReconnectRequired,
    ScopeMissing,
    Unauthorized,
    UndecryptableError,
)
from calendars.failures import failure_of
from calendars.locking import lock_rows
from calendars.models import MISSING_SCOPE, CalendarIntegration
from calendars.providers import get_provider
from calendars.providers.names import PROVIDERS
from calendars.selectors import read_for_sync
from calendars.services.faults import provider_fault_clear, provider_fault_record


@sensitive_variables("grant", "credentials")
def integration_access_token(*, integration: CalendarIntegration, force: bool = False) -> str:
    """A valid access token, refreshed when needed and saved.

    Refreshes of one integration are serialized by a row lock: Microsoft rotates refresh
    tokens, so a request must never use one that a concurrent refresh has just replaced. The
    outcome (new credentials, a lost grant, an error) is written under that same lock, so a
    reconnection made meanwhile is never overwritten by a stale failure.

    A sync run, which read `integration` under the integration's lock, uses the access token
    its credentials hold as it is when it stays good a while, without the row lock: nothing
    is refreshed, and should the grant be gone meanwhile, the provider's 401 brings the run
    back here with `force`.
    """
    if (
        not force
        and read_for_sync(integration)
        and integration.status == CalendarIntegration.Status.CONNECTED
    ):
        stored = _stored_access_token(integration)
        if stored:
            return stored
    failure: ProviderError | None = None
    with transaction.atomic():
        locked = (
            lock_rows(CalendarIntegration.objects)
            .defer("credentials")  # decrypted below, where a failure is handled
            .filter(pk=integration.pk)
            .first()
        )
        if locked is None:
            raise ReconnectRequired("The integration was disconnected.")
        if locked.needs_reconnect:
            raise ReconnectRequired(
                locked.last_error or "The integration needs reconnecting.",
                code=locked.last_error_code,
            )
        try:
            credentials = locked.get_credentials()
            grant = get_provider(locked.provider).oauth.access_token(credentials, force=force)
        except UndecryptableError:
            failure = CredentialsUnreadable("The stored credentials can no longer be read.")
            _record_failure(locked, failure)
        except AppCredentialsRejected as error:
            # The application's fault, not the learner's: their integration stays as it is.
            provider_fault_record(provider=locked.provider, error=error)
            failure = error
        except ProviderError as error:
            failure = error
            _record_failure(locked, failure)
        else:
            changed = grant.credentials != credentials
            if changed:  # the token endpoint answered: the application's credentials work
                provider_fault_clear(provider=locked.provider)
                locked.set_credentials(grant.credentials)
                locked.token_expires_at = grant.expires_at
            if changed or locked.status != CalendarIntegration.Status.CONNECTED:
                locked.status = CalendarIntegration.Status.CONNECTED
                locked.last_error_code = locked.last_error = ""
                locked.last_error_at = None
                locked.save(update_fields=[*CREDENTIAL_FIELDS, *STATUS_FIELDS])
    for name in ("status", "last_error_code", "last_error", "last_error_at", "token_expires_at"):
        setattr(integration, name, getattr(locked, name))
    if failure is None:  # read (and perhaps refreshed) above: the next call uses it as it is
        integration.credentials = locked.credentials
    if failure is not None:
        raise failure
    return grant.access_token


@sensitive_variables("credentials")
def _stored_access_token(integration: CalendarIntegration) -> str | None:
    if "credentials" in integration.get_deferred_fields():
        return None
    try:
        credentials = integration.get_credentials()
    except UndecryptableError:
        return None  # told under the lock below
    return get_provider(integration.provider).oauth.stored_access_token(credentials)


CREDENTIAL_FIELDS = ["credentials", "token_expires_at"]
STATUS_FIELDS = [
    "status", "last_error_code", "last_error", "last_error_at", "reconnect_reason", "updated_at",
]  # fmt: skip


def _record_failure(integration: CalendarIntegration, failure: ProviderError) -> None:
    """A lost grant needs the learner; a permanent error is shown; a temporary one is noted.
    Either goes to the security log with its code (never the provider's message)."""
    security_event_record(
        kind=SecurityEvent.Kind.GRANT_LOST
        if isinstance(failure, ReconnectRequired)
        else SecurityEvent.Kind.REFRESH_FAILED,
        user_id=integration.user_id,
        service=PROVIDERS[integration.provider].label,
        account=integration.account_email,
        detail=failure_of(failure).code,
    )
    if isinstance(failure, ReconnectRequired):
        integration.status = CalendarIntegration.Status.NEEDS_RECONNECT
        integration.reconnect_reason = MISSING_SCOPE if isinstance(failure, ScopeMissing) else ""
    elif failure.permanent:
        integration.status = CalendarIntegration.Status.ERROR
    integration.last_error_code = failure_of(failure).code
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


def integration_mark_needs_reconnect(
    *, integration: CalendarIntegration, reason: str, code: str = ""
) -> None:
    """The grant is gone, or lacks a permission (`code` MISSING_SCOPE): the learner is told on
    every page; their data and choices stay. `reason` is for staff."""
    marked = (
        CalendarIntegration.objects.filter(pk=integration.pk)
        .exclude(status=CalendarIntegration.Status.NEEDS_RECONNECT)
        .update(
            status=CalendarIntegration.Status.NEEDS_RECONNECT,
            last_error_code="missing_scope" if code == MISSING_SCOPE else "needs_reconnect",
            last_error=reason,
            last_error_at=timezone.now(),
            reconnect_reason=code,
        )
    )
    integration.refresh_from_db(
        fields=["status", "last_error_code", "last_error", "last_error_at", "reconnect_reason"]
    )
    if marked:
        security_event_record(
            kind=SecurityEvent.Kind.GRANT_LOST,
            user_id=integration.user_id,
            service=PROVIDERS[integration.provider].label,
            account=integration.account_email,
            detail=integration.last_error_code,
        )
