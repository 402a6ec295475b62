"""Access tokens over time: refresh, rotation, lost grants; providers misbehaving and stored
credentials that cannot be read; refreshes of one integration serialized."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.urls import reverse

from calendars.errors import ProviderError, ReconnectRequired, Unauthorized
from calendars.models import CalendarIntegration
from calendars.services.credentials import (
    integration_access_token,
    integration_call,
    integration_mark_needs_reconnect,
)
from core.tls import outlook_verify
from tests.calendars.calendar_helpers import at_once
from tests.calendars.connect_helpers import connect
from tests.sandbox.microsoft.helpers import raw_token_request


def _calendar_list(token: str) -> int:
    """A real API call of each provider that raises Unauthorized on a 401."""
    response = requests.get(
        f"{settings.GOOGLE_API_URL}calendar/v3/users/me/calendarList",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    if response.status_code == 401:
        raise Unauthorized("401")
    response.raise_for_status()
    return len(response.json()["items"])


def _me(token: str) -> str:
    response = requests.get(
        f"{settings.OUTLOOK_GRAPH_URL}/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
        verify=outlook_verify(),
    )
    if response.status_code == 401:
        raise Unauthorized("401")
    response.raise_for_status()
    return response.json()["mail"]


CALLS = {"google": _calendar_list, "outlook": _me}
TOKEN_ENDPOINT = {"google": "google.token", "outlook": "microsoft.token"}


def _account(sandbox, integration):
    return sandbox.store.account(integration.account_email)


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_access_token_refused_as_expired_is_refreshed_once_and_saved(
    sandbox_settings, learner, provider
):
    integration = connect(sandbox_settings, learner, provider)
    stored_before = integration.credentials
    sandbox_settings.provider_for(_account(sandbox_settings, integration)).expire_access_tokens(
        _account(sandbox_settings, integration)
    )
    sandbox_settings.reset_counters()

    assert integration_call(integration=integration, call=CALLS[provider])

    assert sandbox_settings.count(TOKEN_ENDPOINT[provider]) == 1
    integration.refresh_from_db()
    assert integration.credentials != stored_before


def test_google_token_close_to_expiry_is_refreshed_before_the_call(sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "google")
    credentials = integration.get_credentials()
    credentials["expiry"] = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    integration.set_credentials(credentials)
    integration.save()
    sandbox_settings.reset_counters()

    token = integration_access_token(integration=integration)

    assert sandbox_settings.count("google.token") == 1
    assert token != credentials["token"]
    assert _calendar_list(token) > 0
    # A fresh token is used as it is: no request at all.
    sandbox_settings.reset_counters()
    assert integration_access_token(integration=integration) == token
    assert sandbox_settings.count("google.token") == 0


def _outlook_refresh_token(integration: CalendarIntegration) -> str:
    cache = json.loads(integration.get_credentials()["cache"])
    (entry,) = cache["RefreshToken"].values()
    return entry["secret"]


def test_outlook_rotated_refresh_token_is_persisted(sandbox_settings, learner, monkeypatch):
    # Strict rotation: only the newest refresh token works, so storing it is what is tested.
    monkeypatch.setattr(sandbox_settings.options, "strict_refresh_rotation", True)
    integration = connect(sandbox_settings, learner, "outlook")
    first = _outlook_refresh_token(integration)

    integration_access_token(integration=integration, force=True)
    integration.refresh_from_db()
    second = _outlook_refresh_token(integration)

    assert second != first
    refused = raw_token_request(
        sandbox_settings,
        {"grant_type": "refresh_token", "refresh_token": first, "scope": "User.Read"},
    )
    assert refused.json()["error"] == "invalid_grant"
    # The stored (newest) one keeps working.
    assert _me(integration_access_token(integration=integration, force=True))


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_revoked_grant_marks_needs_reconnect_and_keeps_choices(
    sandbox_settings, learner, learner_client, provider
):
    integration = connect(sandbox_settings, learner, provider)
    integration.export_enabled = False
    integration.save()
    sandbox_settings.provider_for(_account(sandbox_settings, integration)).revoke_account(
        _account(sandbox_settings, integration)
    )

    with pytest.raises(ReconnectRequired):
        integration_access_token(integration=integration, force=True)

    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.NEEDS_RECONNECT
    assert integration.last_error and integration.last_error_at
    assert integration.export_enabled is False
    page = learner_client.get(reverse("formations:list"))
    assert "a été retiré ou a expiré" in page.text
    assert reverse("calendars:connect", args=[provider]) in page.text
    # Said once where the learner acts on it: the card, not a banner above it as well.
    settings_page = learner_client.get(reverse("settings_calendars")).text
    assert settings_page.count("a été retiré ou a expiré") == 1
    assert settings_page.count(f'action="{reverse("calendars:connect", args=[provider])}"') == 1
    # No more calls until the learner reconnects: the provider is not asked again.
    sandbox_settings.reset_counters()
    with pytest.raises(ReconnectRequired):
        integration_access_token(integration=integration)
    assert sandbox_settings.count(TOKEN_ENDPOINT[provider]) == 0


# --- providers misbehaving, credentials unreadable --------------------------------------------


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


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_sync_with_unreadable_credentials_asks_for_reconnection_and_keeps_them(
    sandbox_settings, learner, learner_client, settings, provider
):
    """A lost CALENDAR_TOKEN_KEY (or a rotation without the old one): the sync records why,
    the learner is asked to reconnect, and the ciphertext stays as it was (the old key, put
    back, reads it again)."""
    from calendars.models import SyncRun
    from calendars.sync.runs import integration_run

    integration = connect(sandbox_settings, learner, provider)
    key, stored = settings.CALENDAR_TOKEN_KEY, integration.get_credentials()
    settings.CALENDAR_TOKEN_KEY = "a-key-that-never-wrote-anything-" + "q" * 20

    run = integration_run(integration_id=integration.pk, trigger=SyncRun.Trigger.PERIODIC)

    assert run is not None and "can no longer be read" in run.error
    integration.refresh_from_db()
    assert integration.needs_reconnect
    assert "can no longer be read" in integration.last_error
    assert learner_client.get(reverse("calendars:calendar")).status_code == 200
    answer = learner_client.post(reverse("calendars:import_now"))
    assert answer.status_code == 302
    CalendarIntegration.objects.get(pk=integration.pk).save()  # every field written back
    settings.CALENDAR_TOKEN_KEY = key  # the old key, put back, reads them again
    assert CalendarIntegration.objects.get(pk=integration.pk).get_credentials() == stored


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_of_one_integration_are_serialized(
    sandbox_settings, make_user, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL; .ci/run runs this test against it")
    monkeypatch.setattr(sandbox_settings.options, "strict_refresh_rotation", True)
    integration = connect(sandbox_settings, make_user(), "outlook")

    def refresh() -> str:
        mine = CalendarIntegration.objects.get(pk=integration.pk)
        return integration_access_token(integration=mine, force=True)

    # Without the row lock, the second refresh would use the refresh token the first one
    # had just rotated away, and Microsoft (the sandbox) would answer invalid_grant: at_once
    # finds no error.
    tokens = at_once(2, refresh)
    assert len(set(tokens)) == 2
    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.CONNECTED
    assert integration_access_token(integration=integration, force=True)


def test_a_lost_outlook_refresh_answer_costs_the_learner_no_reconnection(sandbox_settings, learner):
    """Entra carries the refresh out and rotates the token, but the answer never arrives: the
    stored (older) refresh token still works, as it does at Microsoft."""
    integration = connect(sandbox_settings, learner, "outlook")
    sandbox_settings.add_fault("lost_response", endpoint="microsoft.token")

    with pytest.raises(ProviderError) as lost:
        integration_access_token(integration=integration, force=True)
    assert not isinstance(lost.value, ReconnectRequired)

    assert _me(integration_access_token(integration=integration, force=True))
    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.CONNECTED
