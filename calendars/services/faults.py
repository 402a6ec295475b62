"""Faults of the application's own set-up at a provider: its client secret expired or is
wrong. No learner can fix them and no retry helps, so the first refusal is recorded once per
provider; that provider's syncs are held (one is let through now and then to see whether it
is fixed), staff see what to do in the admin, and learners that the service is unavailable.

A fault ends when a token request succeeds again, when other credentials are configured (the
fault remembers a keyed hash of the refused ones), or when staff delete it in the admin.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.crypto import salted_hmac

from calendars.errors import AppCredentialsRejected
from calendars.models import ProviderFault
from calendars.providers.names import PROVIDERS

logger = logging.getLogger(__name__)


def _fingerprint(provider: str) -> str:
    values = "\0".join(str(getattr(settings, n, "")) for n in PROVIDERS[provider].client_settings)
    return salted_hmac("calendars.provider-fault", values, algorithm="sha256").hexdigest()


def _probe_delay() -> timedelta:
    return timedelta(seconds=settings.CALENDAR_PROVIDER_FAULT_PROBE)


def provider_fault_record(*, provider: str, error: AppCredentialsRejected) -> None:
    """The provider refused the application's credentials: hold its syncs."""
    now, fingerprint = timezone.now(), _fingerprint(provider)
    fault, created = ProviderFault.objects.get_or_create(
        provider=provider,
        defaults={
            "detail": error.message,
            "secret_fingerprint": fingerprint,
            "probe_at": now + _probe_delay(),
        },
    )
    if created:
        logger.error("%s syncs are held: %s", PROVIDERS[provider].title, error.message)
        return
    fault.detail = error.message
    fault.probe_at = now + _probe_delay()
    if fault.secret_fingerprint != fingerprint:  # refused again, with other credentials
        fault.secret_fingerprint = fingerprint
        fault.detected_at = now
    fault.save()


def provider_faults() -> dict[str, ProviderFault]:
    """The faults in force, by provider. One recorded for credentials that are no longer the
    configured ones is over: it is deleted."""
    faults = {}
    for fault in ProviderFault.objects.all():
        if fault.provider not in PROVIDERS or fault.secret_fingerprint != _fingerprint(
            fault.provider
        ):
            fault.delete()
            logger.info("%s: other credentials are configured, syncs resume.", fault.provider)
        else:
            faults[fault.provider] = fault
    return faults


def provider_sync_held(provider: str) -> bool:
    """Whether a sync with `provider` must not run now. While a fault is in force, one sync
    every CALENDAR_PROVIDER_FAULT_PROBE seconds is let through, to see whether it is over."""
    fault = provider_faults().get(provider)
    if fault is None:
        return False
    now = timezone.now()
    claimed = ProviderFault.objects.filter(pk=fault.pk, probe_at__lte=now).update(
        probe_at=now + _probe_delay()
    )
    return claimed == 0


def provider_fault_clear(*, provider: str) -> None:
    """The provider accepted the application's credentials: its syncs go again."""
    if ProviderFault.objects.filter(provider=provider).delete()[0]:
        logger.info("%s accepts the application's credentials again.", PROVIDERS[provider].title)
