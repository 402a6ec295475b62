"""CalDAV calendars (RFC 4791: iCloud, Fastmail, Nextcloud...), through the caldav library, with
recurring series expanded here by recurring-ical-events. No OAuth and no push: the learner gives
a server address, a username and an app-specific password, and the periodic sync polls."""

from __future__ import annotations

from calendars.providers.base import Provider
from calendars.providers.caldav.api import CalDAVCalendars
from calendars.providers.caldav.auth import CalDAVAuth

provider = Provider(name="caldav", oauth=CalDAVAuth(), calendars=CalDAVCalendars(), push=None)
