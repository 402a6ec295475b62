"""Outlook calendars through msal (Microsoft identity platform) and Microsoft Graph."""

from __future__ import annotations

from calendars.providers.base import Provider
from calendars.providers.outlook.api import OutlookCalendars
from calendars.providers.outlook.oauth import OutlookOAuth
from calendars.providers.outlook.push import OutlookPush

provider = Provider(
    name="outlook", oauth=OutlookOAuth(), calendars=OutlookCalendars(), push=OutlookPush()
)
