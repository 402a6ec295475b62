"""Push notifications from Google and Microsoft.

Called by the providers, not by people: no session, no CSRF token. A notification only says
"something changed"; what changed is fetched by the sync it asks for. Anything not proven
ours (unknown channel, wrong secret) is ignored with a success status, so that the provider
stops sending it rather than retrying. What only a flood would send is refused before any
work: a body over WEBHOOK_BODY_MAX (413, before it is read), a body nested past what the JSON
parser takes (400); and a notification's items are looked up in one query, however many.
"""

from __future__ import annotations

import json
import logging

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from calendars.models import PushChannel
from calendars.push import channel_check, channels_named, secret_matches
from calendars.tasks import dispatch_push_sync, dispatch_watch

logger = logging.getLogger(__name__)

# Graph's notifications without resource data are a few hundred bytes each; Google's have no
# body at all. A larger body is not a notification of ours, and is not read.
WEBHOOK_BODY_MAX = 1024 * 1024


def _too_large(request: HttpRequest) -> bool:
    # WSGI reads no more than Content-Length; a body without one is read as empty.
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > WEBHOOK_BODY_MAX
    except ValueError:
        return True


@csrf_exempt
@login_not_required
@require_POST
def webhook_google(request: HttpRequest) -> HttpResponse:
    """https://developers.google.com/calendar/api/guides/push#receiving-notifications"""
    if _too_large(request):
        return HttpResponse(status=413)
    channel = channel_check(
        request.headers.get("X-Goog-Channel-ID", ""),
        request.headers.get("X-Goog-Channel-Token", ""),
    )
    if channel is None or request.headers.get("X-Goog-Resource-ID", "") != channel.resource_id:
        logger.info("Google notification for an unknown channel ignored")
        return HttpResponse(status=200)
    # "sync" only announces a new channel; "exists" / "not_exists": something changed.
    if request.headers.get("X-Goog-Resource-State") != "sync":
        dispatch_push_sync(channel.integration_id)
    return HttpResponse(status=200)


# Graph's validation tokens are short; anything longer is not one.
VALIDATION_TOKEN_MAX = 1024
# Notifications read from one POST at most (Graph sends up to 100 or so).
NOTIFICATIONS_MAX = 1000


@csrf_exempt
@login_not_required
@require_POST
def webhook_outlook(request: HttpRequest) -> HttpResponse:
    """Change and lifecycle notifications of our Graph subscriptions.
    https://learn.microsoft.com/graph/change-notifications-delivery-webhooks and
    https://learn.microsoft.com/graph/change-notifications-lifecycle-events"""
    token = request.GET.get("validationToken")
    if token is not None:  # the handshake of a new subscription: echo the token, as text
        if len(token) > VALIDATION_TOKEN_MAX:
            return HttpResponse(status=400)
        return HttpResponse(token, content_type="text/plain; charset=utf-8")
    if _too_large(request):
        return HttpResponse(status=413)
    try:
        items = json.loads(request.body)["value"]
        if not isinstance(items, list):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):
        # RecursionError: nested deeper than the parser goes, which no notification is.
        return HttpResponse(status=400)
    named = [
        (str(item.get("subscriptionId") or ""), item)
        for item in items[:NOTIFICATIONS_MAX]
        if isinstance(item, dict)
    ]
    channels = channels_named(name for name, _item in named)
    ignored = 0
    for name, item in named:
        channel = channels.get(name)
        if channel is None or not secret_matches(channel, str(item.get("clientState") or "")):
            ignored += 1
            continue
        lifecycle = item.get("lifecycleEvent")
        if lifecycle == "reauthorizationRequired":
            # Renewing the subscription reauthorizes it.
            PushChannel.objects.filter(pk=channel.pk).update(expires_at=timezone.now())
            dispatch_watch(channel.integration_id)
        elif lifecycle == "subscriptionRemoved":
            channel.delete()
            # Gone: another item naming it is not ours any more.
            channels = {k: c for k, c in channels.items() if c is not channel}
            dispatch_watch(channel.integration_id)
            dispatch_push_sync(channel.integration_id)  # changes since are not notified
        else:  # a change, or "missed": notifications were lost, the delta has it all
            dispatch_push_sync(channel.integration_id)
    if ignored:  # one line per POST, however many items a flood sends
        logger.info("Graph notifications for unknown subscriptions ignored: %d", ignored)
    return HttpResponse(status=202)
