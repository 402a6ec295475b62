"""Connecting a learner's calendar through the real flow against the sandbox."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from calendars.models import CalendarIntegration
from calendars.services.connection import integration_connect_finish, integration_connect_start
from tests.sandbox.google import helpers as google_helpers
from tests.sandbox.microsoft import helpers as microsoft_helpers

REDIRECT = "http://testserver/calendar/callback/{}"
GOOGLE_ACCOUNT = google_helpers.CAMILLE
OUTLOOK_ACCOUNT = microsoft_helpers.WORK


def consent_redirect(sandbox: Any, provider: str, auth_url: str, email: str | None,
                     accept: bool = True) -> str:  # fmt: skip
    """Plays the learner on the sandbox's consent page; returns where it sends the browser."""
    if provider == "google":
        decision = "allow" if accept else "deny"
        return google_helpers.consent(sandbox, auth_url, email, decision=decision)
    page = microsoft_helpers.open_consent(auth_url)
    answer = microsoft_helpers.submit_consent(page, email, "accept" if accept else "cancel")
    return answer.headers["Location"]


def connect(
    sandbox: Any, user: Any, provider: str, email: str | None = None
) -> CalendarIntegration:
    email = email or (GOOGLE_ACCOUNT if provider == "google" else OUTLOOK_ACCOUNT)
    url = integration_connect_start(
        user=user, provider_name=provider, redirect_uri=REDIRECT.format(provider)
    )
    back = consent_redirect(sandbox, provider, url, email)
    params = dict(parse_qsl(urlsplit(back).query))
    return integration_connect_finish(user=user, provider_name=provider, params=params)
