"""Push notifications: Google watch channels and Graph subscriptions, opened, renewed and
closed for each integration, and the checks a notification passes before it asks for a sync.

A channel is a bonus on top of the periodic sync: failing to open one is logged and tried
again at the next sync, never an error for the learner. Notifications carry nothing but
"something changed": the sync fetches the changes with its sync token or delta link.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from calendars.errors import (
    AppCredentialsRejected,
    ProviderError,
    PushNotSupported,
    ReconnectRequired,
)
from calendars.models import Calendar, CalendarIntegration, PushChannel
from calendars.providers import get_provider
from calendars.providers.base import PushClient
from calendars.providers.names import PROVIDERS
from calendars.selectors import integration_calendars, integration_has_exports
from calendars.services.credentials import integration_call

logger = logging.getLogger(__name__)


def webhook_address(provider: str) -> str:
    """Where `provider` sends notifications, or "" when push cannot work here: providers
    call https addresses only (the sandbox also calls plain http on loopback), and polled
    ones (CalDAV) call nothing."""
    if not settings.CALENDAR_PUSH_ENABLED or PROVIDERS[provider].polled:
        return ""
    base = settings.CALENDAR_WEBHOOK_URL
    parts = urlsplit(base)
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname)):
        return ""
    return base + reverse(f"calendars:webhook_{provider}")


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _wanted(integration: CalendarIntegration) -> list[Calendar | None]:
    """What should be watched: nothing unless automatic sync is on; else, with Google, each
    calendar the sync lists, with Outlook, the mailbox (None)."""
    if not integration.sync_enabled or integration.needs_reconnect:
        return []
    if not webhook_address(integration.provider):
        return []
    exports = integration_has_exports(integration)
    if not (integration.import_enabled or exports):
        return []
    push = get_provider(integration.provider).push
    if push is None:  # polled by the periodic sync
        return []
    if not push.per_calendar:
        return [None]
    return [
        calendar
        for calendar in integration_calendars(integration)
        if (
            (integration.import_enabled and calendar.import_enabled)
            or (exports and calendar.is_export_target)
        )
        and not calendar.polled
    ]


def _in_place(
    integration: CalendarIntegration,
    wanted: dict[int | None, Calendar | None],
    renew_before: datetime,
) -> bool:
    """Whether the channels are what is wanted and none is due for renewal, as a sync run
    read them with the integration (`selectors.integration_for_sync`): then none is read."""
    count = getattr(integration, "channel_count", None)
    if count is None or count != len(wanted):
        return False
    if count and integration.channels_renew_by <= renew_before:  # type: ignore[attr-defined]
        return False
    return all(
        integration.mailbox_watched if calendar is None else getattr(calendar, "watched", False)  # type: ignore[attr-defined]
        for calendar in wanted.values()
    )


def integration_channels_reconcile(*, integration: CalendarIntegration) -> None:
    """Opens the channels the integration should have, renews those about to expire and
    closes the others. Provider failures are logged; the next sync tries again."""
    wanted = {(c.pk if c else None): c for c in _wanted(integration)}
    renew_before = timezone.now() + timedelta(seconds=settings.CALENDAR_PUSH_RENEW_BEFORE)
    if _in_place(integration, wanted, renew_before):
        return
    open_channels = list(integration.channels.all())
    if not wanted and not open_channels:
        return
    replaced = []
    try:
        for channel in open_channels:
            if channel.calendar_id not in wanted:
                _stop(integration, channel)
            elif channel.expires_at <= renew_before:
                if _renew(integration, channel):
                    wanted.pop(channel.calendar_id)
                else:
                    replaced.append(channel)  # stopped once its successor is open
            else:
                wanted.pop(channel.calendar_id)
        for calendar in wanted.values():
            try:
                _open(integration, calendar)
            except PushNotSupported:
                # Said once for good: polled from now on, and the others still get channels.
                logger.info("Calendar %s gets no push: polled", calendar.pk if calendar else "")
                if calendar is not None:
                    Calendar.objects.filter(pk=calendar.pk).update(polled=True)
        for channel in replaced:
            _stop(integration, channel)
    except ReconnectRequired:
        pass  # the integration is marked; its channels are closed on reconnect or disconnect
    except ProviderError as error:
        logger.warning("Push channels of integration %s: %s", integration.pk, error.message)


def integration_channels_stop(*, integration: CalendarIntegration) -> None:
    """Closes every channel of the integration (on disconnect): best effort, the rows go."""
    for channel in integration.channels.all():
        try:
            _stop(integration, channel)
        except ProviderError as error:
            logger.warning("Closing channel of integration %s: %s", integration.pk, error.message)
            channel.delete()


def _open(integration: CalendarIntegration, calendar: Calendar | None) -> None:
    push = _push(integration)
    secret = secrets.token_urlsafe(32)
    expires = timezone.now() + timedelta(seconds=settings.CALENDAR_PUSH_TTL)
    info = integration_call(
        integration=integration,
        call=lambda token: push.watch(
            token,
            calendar_id=calendar.external_id if calendar else "",
            address=webhook_address(integration.provider),
            secret=secret,
            expires_at=expires,
        ),
    )
    PushChannel.objects.create(
        integration=integration,
        calendar=calendar,
        channel_id=info.channel_id,
        resource_id=info.resource_id,
        secret_digest=digest(secret),
        expires_at=info.expires_at,
    )


def _renew(integration: CalendarIntegration, channel: PushChannel) -> bool:
    push = _push(integration)
    expires = timezone.now() + timedelta(seconds=settings.CALENDAR_PUSH_TTL)
    try:
        ends = integration_call(
            integration=integration,
            call=lambda token: push.renew_watch(
                token, channel_id=channel.channel_id, expires_at=expires
            ),
        )
    except ProviderError as error:
        if error.permanent and not isinstance(error, ReconnectRequired | AppCredentialsRejected):
            return False  # gone at the provider: open a new one
        raise
    if ends is None:
        return False
    PushChannel.objects.filter(pk=channel.pk).update(expires_at=ends)
    return True


def _stop(integration: CalendarIntegration, channel: PushChannel) -> None:
    push = _push(integration)
    integration_call(
        integration=integration,
        call=lambda token: push.stop_watch(
            token, channel_id=channel.channel_id, resource_id=channel.resource_id
        ),
    )
    channel.delete()


def _push(integration: CalendarIntegration) -> PushClient:
    push = get_provider(integration.provider).push
    if push is None:
        raise ProviderError(f"{integration.provider} has no push notifications.", permanent=True)
    return push


# --- notifications ----------------------------------------------------------------------------


def channel_check(channel_id: str, secret: str) -> PushChannel | None:
    """The channel a notification names, if its secret is the one we gave it."""
    if not channel_id or not secret:
        return None
    channel = channels_named([channel_id]).get(channel_id)
    return channel if channel is not None and secret_matches(channel, secret) else None


def channels_named(channel_ids: Iterable[str]) -> dict[str, PushChannel]:
    """The channels of these ids, by the id as named, in one query (a notification may name
    many); an id is read as far as the column holds."""
    wanted = {channel_id for channel_id in channel_ids if channel_id}
    if not wanted:
        return {}
    channels = (
        PushChannel.objects.filter(channel_id__in={channel_id[:255] for channel_id in wanted})
        .select_related("integration")
        .only("secret_digest", "integration_id", "channel_id", "integration__status")
    )
    found = {channel.channel_id: channel for channel in channels}
    return {name: found[name[:255]] for name in wanted if name[:255] in found}


def secret_matches(channel: PushChannel, secret: str) -> bool:
    """Whether a notification's secret is the one we gave the channel."""
    return bool(secret) and hmac.compare_digest(channel.secret_digest, digest(secret))
