"""What happens when providers misbehave, and when stored credentials cannot be read."""

from __future__ import annotations

import logging
import time

import pytest
from django.urls import reverse

from calendars.errors import ProviderError, ReconnectRequired
from calendars.models import CalendarIntegration
from calendars.services.credentials import (
    integration_access_token,
    integration_mark_needs_reconnect,
)
from tests.calendars.connect_helpers import connect

TOKEN_ENDPOINT = {"google": "google.token", "outlook": "microsoft.token"}


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_provider_slower_than_the_timeout_is_a_temporary_error(
    sandbox_settings, learner, settings, provider
):
    integration = connect(sandbox_settings, learner, provider)
    settings.CALENDAR_HTTP_TIMEOUT = 0.5
    sandbox_settings.add_fault("slow", endpoint=TOKEN_ENDPOINT[provider], delay=2.0, times=0)
    started = time.monotonic()

    with pytest.raises(ProviderError) as excinfo:
        integration_access_token(integration=integration, force=True)

    # google-auth tries the token endpoint a few times on its own; each try is bounded.
    assert time.monotonic() - started < 6
    assert excinfo.value.permanent is False
    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.CONNECTED
    assert integration.last_error and integration.last_error_at


@pytest.mark.parametrize("provider", ["google", "outlook"])
@pytest.mark.parametrize("kind", ["truncated", "malformed"])
def test_an_unreadable_token_response_is_temporary_and_never_logged(
    sandbox_settings, learner, caplog, provider, kind
):
    integration = connect(sandbox_settings, learner, provider)
    sandbox_settings.add_fault(kind, endpoint=TOKEN_ENDPOINT[provider], times=0)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ProviderError) as excinfo:
        integration_access_token(integration=integration, force=True)

    assert excinfo.value.permanent is False
    issued = sandbox_settings.google.issued_tokens() | sandbox_settings.microsoft.issued_tokens()
    logged = caplog.text + str(excinfo.value)
    assert not [token for token in issued if token in logged]


def test_microsoft_sign_in_service_down_ends_with_a_message(learner_client, sandbox_settings):
    sandbox_settings.add_fault("server_error", endpoint="microsoft.openid", times=0)
    response = learner_client.post(reverse("calendars:connect", args=["outlook"]), follow=True)
    assert response.status_code == 200
    assert "injoignable" in response.text


def test_permanent_error_is_shown_then_cleared_by_a_success(sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "google")
    sandbox_settings.add_fault("rate_limit_403", endpoint="google.token")
    # A 403 from the token endpoint that is not invalid_grant: refused, not a lost grant.
    with pytest.raises(ProviderError):
        integration_access_token(integration=integration, force=True)
    integration.refresh_from_db()
    assert integration.last_error

    integration_access_token(integration=integration, force=True)
    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.CONNECTED
    assert integration.last_error == "" and integration.last_error_at is None


def test_the_first_reason_for_reconnecting_is_kept(sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "google")
    account = sandbox_settings.store.account(integration.account_email)
    sandbox_settings.google.revoke_account(account)
    with pytest.raises(ReconnectRequired):
        integration_access_token(integration=integration, force=True)
    integration.refresh_from_db()
    first = (integration.last_error, integration.last_error_at)

    with pytest.raises(ReconnectRequired):
        integration_access_token(integration=integration)
    integration_mark_needs_reconnect(integration=integration, reason="later")

    integration.refresh_from_db()
    assert (integration.last_error, integration.last_error_at) == first


def test_a_disconnected_integration_asks_for_reconnection(sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "outlook")
    CalendarIntegration.objects.filter(pk=integration.pk).delete()
    with pytest.raises(ReconnectRequired):
        integration_access_token(integration=integration)


def test_unreadable_credentials_do_not_lock_the_learner_out(
    sandbox_settings, learner, learner_client, settings
):
    integration = connect(sandbox_settings, learner, "google")
    settings.CALENDAR_TOKEN_KEY = "a-key-that-never-wrote-anything-" + "q" * 20

    page = learner_client.get(reverse("settings_calendars"))
    assert page.status_code == 200
    assert integration.account_email in page.text
    with pytest.raises(ReconnectRequired):
        integration_access_token(integration=integration)
    assert CalendarIntegration.objects.defer("credentials").get().needs_reconnect
    api = learner_client.get("/api/calendar-integration/integrations")
    assert api.status_code == 200

    learner_client.post(reverse("settings_calendar_disconnect", args=["google"]))
    assert not CalendarIntegration.objects.exists()


def test_old_keys_are_read_without_surrounding_spaces(monkeypatch):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django.conf import settings; print(settings.CALENDAR_TOKEN_OLD_KEYS)"],
        env={**__import__("os").environ, "CALENDAR_TOKEN_OLD_KEYS": "first, second,"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout.strip().splitlines()[-1] == "['first', 'second']"
