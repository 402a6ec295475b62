"""Disconnecting: it sits above push and sync, since it closes the channels and may take
the exported formations back out of the learner's calendar."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.views.decorators.debug import sensitive_variables

from accounts.models import SecurityEvent
from accounts.security import security_event_record
from calendars.errors import ProviderError, UndecryptableError
from calendars.models import CalendarEvent, CalendarIntegration
from calendars.providers import get_provider
from calendars.providers.names import PROVIDERS
from calendars.push import integration_channels_stop
from calendars.selectors import integration_formations_in_calendar
from calendars.sync.exporting import integration_export_remove_all

logger = logging.getLogger(__name__)


@sensitive_variables()
@dataclass(frozen=True)
class Disconnected:
    """What disconnecting did, for the message the learner gets."""

    removed: int  # formations taken out of the learner's calendar
    left: int  # formations left there, no longer kept up to date
    forgotten: int  # imported events erased from this site
    revoked: bool  # the grant revoked at the provider (Microsoft has no way to)


def integration_disconnect_plan(*, integration: CalendarIntegration) -> tuple[int, int]:
    """(formations in the learner's calendar, events imported from it): what disconnecting
    concerns, for the confirmation page."""
    exported = integration_formations_in_calendar(integration=integration)
    events = CalendarEvent.objects.filter(calendar__integration=integration).count()
    return exported, events


@dataclass(frozen=True)
class Withdrawn:
    """What taking the formations out of the learner's calendar did."""

    removed: int
    left: int  # not taken out (a provider failure): still there, and kept up to date
    busy: bool  # a sync of this integration held it: nothing was done


def integration_formations_withdraw(*, integration: CalendarIntegration) -> Withdrawn:
    """Takes every formation this site wrote out of the learner's calendar, once they turned
    off "Ajouter mes formations" and chose to. Those the provider would not remove stay
    there, kept up to date as if the learner had added them: asking again retries them."""
    before = integration_formations_in_calendar(integration=integration)
    result = integration_export_remove_all(integration=integration)
    if result.busy:
        return Withdrawn(removed=0, left=before, busy=True)
    return Withdrawn(removed=result.deleted, left=max(0, before - result.deleted), busy=False)


def integration_disconnect(
    *, integration: CalendarIntegration, remove_exported: bool = False
) -> Disconnected:
    """Closes the push channels, revokes the grant where the provider allows it, then erases
    the credentials; with `remove_exported`, takes the exported formations out of the
    learner's calendar first (best effort: the learner wants out whatever the provider
    says)."""
    exported, forgotten = integration_disconnect_plan(integration=integration)
    integration_channels_stop(integration=integration)
    removed = 0
    if remove_exported:
        try:
            removed = integration_export_remove_all(integration=integration).deleted
        except ProviderError as error:
            logger.warning(
                "Removing exports of integration %s failed: %s", integration.pk, error.message
            )
    provider = get_provider(integration.provider)
    revoked = False
    try:
        revoked = provider.oauth.revoke(integration.get_credentials())
    except UndecryptableError:
        logger.warning("Integration %s: credentials unreadable, not revoked", integration.pk)
    except ProviderError as error:  # the learner wants out: never keep them connected
        logger.warning("Revocation failed for integration %s: %s", integration.pk, error.message)
    security_event_record(
        kind=SecurityEvent.Kind.INTEGRATION_DISCONNECTED,
        user_id=integration.user_id,
        service=PROVIDERS[integration.provider].label,
        account=integration.account_email,
        detail="revoked" if revoked else "",
    )
    integration.delete()
    return Disconnected(
        removed=removed,
        left=exported - removed,
        forgotten=forgotten,
        revoked=revoked,
    )
