"""The access token a sync reads from the stored credentials (no request, nothing refreshed),
and when it is not used: about to expire, or due for msal's early refresh."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from calendars.providers import get_provider
from calendars.providers.base import STORED_TOKEN_MARGIN
from calendars.providers.names import PROVIDERS
from tests.calendars.connect_helpers import connect

# Those the sandbox connects; CalDAV's: tests/calendars/caldav/test_caldav_learner.py.
OAUTH_PROVIDERS = [name for name, info in PROVIDERS.items() if info.connection == "oauth"]


@pytest.mark.parametrize("provider", OAUTH_PROVIDERS)
def test_the_token_the_connection_stored_is_read_back_without_a_request(
    sandbox_settings, learner, provider
):
    integration = connect(sandbox_settings, learner, provider)
    credentials = integration.get_credentials()
    sandbox_settings.reset_counters()

    stored = get_provider(provider).oauth.stored_access_token(credentials)

    assert stored
    assert stored == get_provider(provider).oauth.access_token(credentials).access_token
    assert sum(sandbox_settings.counters.values()) == 0


def test_a_google_token_about_to_expire_is_not_used():
    oauth = get_provider("google").oauth
    later = datetime.now(UTC) + STORED_TOKEN_MARGIN + timedelta(minutes=1)
    soon = datetime.now(UTC) + STORED_TOKEN_MARGIN - timedelta(minutes=1)
    assert oauth.stored_access_token({"token": "t", "expiry": later.isoformat()}) == "t"
    assert oauth.stored_access_token({"token": "t", "expiry": soon.isoformat()}) is None
    assert oauth.stored_access_token({"token": "t", "expiry": None}) is None
    assert oauth.stored_access_token({"refresh_token": "r"}) is None


def _with_access_token(credentials, **fields):
    cache = json.loads(credentials["cache"])
    for entry in cache["AccessToken"].values():
        entry.update({name: str(value) for name, value in fields.items()})
    return {"cache": json.dumps(cache)}


def test_an_outlook_token_about_to_expire_or_due_for_refresh_is_not_used(sandbox_settings, learner):
    oauth = get_provider("outlook").oauth
    credentials = connect(sandbox_settings, learner, "outlook").get_credentials()
    now = int(time.time())
    margin = int(STORED_TOKEN_MARGIN.total_seconds())

    assert oauth.stored_access_token(_with_access_token(credentials, expires_on=now + 2 * margin))
    soon = _with_access_token(credentials, expires_on=now + margin // 2)
    assert oauth.stored_access_token(soon) is None
    due = _with_access_token(credentials, expires_on=now + 2 * margin, refresh_on=now - 1)
    assert oauth.stored_access_token(due) is None
    assert oauth.stored_access_token({}) is None
