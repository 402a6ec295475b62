"""Disconnecting: it sits above push and sync, since it closes the channels and may take
the exported formations back out of the learner's calendar."""

from __future__ import annotations

import logging

from django.views.decorators.debug import sensitive_variables

from calendars.errors import ProviderError, UndecryptableError
from calendars.models import CalendarIntegration
from calendars.providers import get_provider
from calendars.push import integration_channels_stop
from calendars.sync.exporting import integration_export_remove_all

logger = logging.getLogger(__name__)


@sensitive_variables()
def integration_disconnect(
    *, integration: CalendarIntegration, remove_exported: bool = False
) -> None:
    """Closes the push channels, revokes the grant where the provider allows it, then erases
    the credentials; with `remove_exported`, takes the exported formations out of the
    learner's calendar first (best effort: the learner wants out whatever the provider
    says)."""
    integration_channels_stop(integration=integration)
    if remove_exported:
        try:
            integration_export_remove_all(integration=integration)
        except ProviderError as error:
            logger.warning(
                "Removing exports of integration %s failed: %s", integration.pk, error.message
            )
    provider = get_provider(integration.provider)
    try:
        provider.oauth.revoke(integration.get_credentials())
    except UndecryptableError:
        logger.warning("Integration %s: credentials unreadable, not revoked", integration.pk)
    except ProviderError as error:  # the learner wants out: never keep them connected
        logger.warning("Revocation failed for integration %s: %s", integration.pk, error.message)
    integration.delete()
