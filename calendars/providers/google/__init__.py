"""Google Calendar, through google-auth-oauthlib, google-auth and google-api-python-client."""

from __future__ import annotations

from calendars.providers.base import Provider
from calendars.providers.google.api import GoogleCalendars
from calendars.providers.google.oauth import GoogleOAuth
from calendars.providers.google.push import GooglePush

provider = Provider(
    name="google", oauth=GoogleOAuth(), calendars=GoogleCalendars(), push=GooglePush()
)
