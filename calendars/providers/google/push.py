"""Google's push notifications: one watch channel per calendar.

https://developers.google.com/calendar/api/guides/push
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from calendars.errors import ProviderError
from calendars.providers.base import PushClient
from calendars.providers.google.api import calendar_service
from calendars.providers.google.errors import execute
from calendars.providers.types import PushChannelInfo


class GooglePush(PushClient):
    per_calendar = True

    def watch(
        self,
        access_token: str,
        *,
        calendar_id: str,
        address: str,
        secret: str,
        expires_at: datetime,
    ) -> PushChannelInfo:
        """https://developers.google.com/calendar/api/v3/reference/events/watch"""
        body = {
            "id": str(uuid.uuid4()),
            "type": "web_hook",
            "address": address,
            "token": secret,
            "expiration": int(expires_at.timestamp() * 1000),
        }
        data = execute(
            calendar_service(access_token).events().watch(calendarId=calendar_id, body=body)
        )
        try:
            ends = datetime.fromtimestamp(int(data["expiration"]) / 1000, tz=UTC)
            return PushChannelInfo(data["id"], data["resourceId"], ends)
        except (KeyError, TypeError, ValueError):
            raise ProviderError("Google sent an answer that could not be read.") from None

    def renew_watch(
        self, access_token: str, *, channel_id: str, expires_at: datetime
    ) -> datetime | None:
        return None  # https://developers.google.com/calendar/api/guides/push#renewing

    def stop_watch(self, access_token: str, *, channel_id: str, resource_id: str) -> None:
        """https://developers.google.com/calendar/api/v3/reference/channels/stop"""
        request = (
            calendar_service(access_token)
            .channels()
            .stop(body={"id": channel_id, "resourceId": resource_id})
        )
        execute(request, expect_object=False, absent_ok=True)
