"""Graph subscriptions: one per mailbox, covering every calendar.

https://learn.microsoft.com/graph/outlook-change-notifications-overview
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from django.conf import settings

from calendars.errors import ProviderError
from calendars.providers.base import PushClient
from calendars.providers.outlook.graph import graph_instant, graph_request, graph_stamp
from calendars.providers.types import PushChannelInfo

# Every event of the mailbox, whatever its calendar.
SUBSCRIPTION_RESOURCE = "me/events"


class OutlookPush(PushClient):
    per_calendar = False

    def watch(
        self,
        access_token: str,
        *,
        calendar_id: str,
        address: str,
        secret: str,
        expires_at: datetime,
    ) -> PushChannelInfo:
        """One subscription to every event of the mailbox; lifecycle notifications
        (reauthorization required, removed, missed) come to the same address.
        https://learn.microsoft.com/graph/api/subscription-post-subscriptions"""
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": address,
            "lifecycleNotificationUrl": address,
            "resource": SUBSCRIPTION_RESOURCE,
            "expirationDateTime": graph_stamp(expires_at),
            "clientState": secret,
        }
        data = graph_request(
            access_token, "POST", f"{settings.OUTLOOK_GRAPH_URL}/subscriptions", json=body
        )
        try:
            return PushChannelInfo(
                data["id"], data.get("resource") or "", graph_instant(data["expirationDateTime"])
            )
        except (KeyError, TypeError, ValueError):
            raise ProviderError("Microsoft Graph sent an answer that could not be read.") from None

    def renew_watch(
        self, access_token: str, *, channel_id: str, expires_at: datetime
    ) -> datetime | None:
        """https://learn.microsoft.com/graph/api/subscription-update"""
        data = graph_request(
            access_token,
            "PATCH",
            f"{settings.OUTLOOK_GRAPH_URL}/subscriptions/{quote(channel_id, safe='')}",
            json={"expirationDateTime": graph_stamp(expires_at)},
        )
        try:
            return graph_instant(data["expirationDateTime"])
        except (KeyError, TypeError, ValueError):
            raise ProviderError("Microsoft Graph sent an answer that could not be read.") from None

    def stop_watch(self, access_token: str, *, channel_id: str, resource_id: str) -> None:
        """https://learn.microsoft.com/graph/api/subscription-delete"""
        graph_request(
            access_token,
            "DELETE",
            f"{settings.OUTLOOK_GRAPH_URL}/subscriptions/{quote(channel_id, safe='')}",
            absent_ok=True,
        )
