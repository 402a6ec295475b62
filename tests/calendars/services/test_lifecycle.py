"""Disconnecting a calendar: the grant revoked at the provider where it can be, the
credentials erased whatever the provider answers."""

from __future__ import annotations

import requests
from django.conf import settings
from django.urls import reverse

from calendars.models import CalendarIntegration
from tests.calendars.connect_helpers import connect


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
