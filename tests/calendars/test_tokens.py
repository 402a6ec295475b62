"""Tokens over time: refresh, rotation, lost grants, disconnection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.conf import settings
from django.urls import reverse

from calendars.models import CalendarIntegration
from calendars.providers.base import ReconnectRequired, Unauthorized
from calendars.services import integration_access_token, integration_call
from core.tls import outlook_verify
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


def test_outlook_rotated_refresh_token_is_persisted(sandbox_settings, learner):
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
    # No more calls until the learner reconnects: the provider is not asked again.
    sandbox_settings.reset_counters()
    with pytest.raises(ReconnectRequired):
        integration_access_token(integration=integration)
    assert sandbox_settings.count(TOKEN_ENDPOINT[provider]) == 0


def test_reconnecting_restores_the_integration_with_its_choices(
    sandbox_settings, learner, learner_client
):
    integration = connect(sandbox_settings, learner, "google")
    integration.sync_enabled = False
    integration.status = CalendarIntegration.Status.NEEDS_RECONNECT
    integration.save()

    reconnected = connect(sandbox_settings, learner, "google")

    assert reconnected.pk == integration.pk
    assert reconnected.status == CalendarIntegration.Status.CONNECTED
    assert reconnected.sync_enabled is False
    assert "a été retiré" not in learner_client.get(reverse("formations:list")).text


def test_disconnect_revokes_at_google_and_erases_credentials(
    sandbox_settings, learner, learner_client
):
    integration = connect(sandbox_settings, learner, "google")
    refresh_token = integration.get_credentials()["refresh_token"]

    response = learner_client.post(
        reverse("settings_calendar_disconnect", args=["google"]), follow=True
    )

    assert "est déconnecté" in response.text
    assert not CalendarIntegration.objects.filter(pk=integration.pk).exists()
    refused = requests.post(
        settings.GOOGLE_TOKEN_URI,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token,
              "client_id": settings.GOOGLE_CLIENT_ID,
              "client_secret": settings.GOOGLE_CLIENT_SECRET},
        timeout=5,
    )  # fmt: skip
    assert refused.json()["error"] == "invalid_grant"


def test_disconnect_still_erases_when_google_cannot_be_reached(
    sandbox_settings, learner, learner_client
):
    integration = connect(sandbox_settings, learner, "google")
    sandbox_settings.add_fault("unavailable", endpoint="google.revoke", times=0)
    learner_client.post(reverse("settings_calendar_disconnect", args=["google"]))
    assert not CalendarIntegration.objects.filter(pk=integration.pk).exists()


def test_settings_toggles_are_saved(sandbox_settings, learner, learner_client):
    connect(sandbox_settings, learner, "outlook")
    response = learner_client.post(
        reverse("settings_calendar_update", args=["outlook"]),
        {"outlook-import_enabled": "on", "outlook-sync_enabled": "on"},
        follow=True,
    )
    assert "Vos réglages de synchronisation sont enregistrés." in response.text
    integration = CalendarIntegration.objects.get(user=learner)
    assert (integration.import_enabled, integration.export_enabled, integration.sync_enabled) == (
        True,
        False,
        True,
    )
    assert 'name="outlook-export_enabled"' in response.text


def test_another_learners_integration_cannot_be_changed(
    sandbox_settings, learner_client, make_user
):
    other = make_user()
    theirs = connect(sandbox_settings, other, "google")
    update = learner_client.post(
        reverse("settings_calendar_update", args=["google"]), {"google-import_enabled": ""}
    )
    disconnect = learner_client.post(reverse("settings_calendar_disconnect", args=["google"]))
    assert update.status_code == disconnect.status_code == 404
    theirs.refresh_from_db()
    assert theirs.import_enabled is True
    page = learner_client.get(reverse("settings_calendars"))
    assert theirs.account_email not in page.text
