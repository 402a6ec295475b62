"""Connecting a calendar through the settings pages (the OAuth flow, against the sandbox),
reconnecting, and the choices the learner saves there, for their own integrations only."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from calendars.models import CalendarIntegration, OAuthState
from tests.calendars.client_helpers import messages_of
from tests.calendars.connect_helpers import (
    GOOGLE_ACCOUNT,
    OUTLOOK_ACCOUNT,
    connect,
    consent_redirect,
)

PROVIDERS = ["google", "outlook"]
ACCOUNT = {"google": GOOGLE_ACCOUNT, "outlook": OUTLOOK_ACCOUNT}


def _start(client, provider):
    response = client.post(reverse("calendars:connect", args=[provider]))
    assert response.status_code == 302
    return response["Location"]


def _back(client, location, follow=True):
    back = urlsplit(location)
    assert back.path.startswith("/calendar/callback/")
    return client.get(f"{back.path}?{back.query}", follow=follow)


@pytest.mark.parametrize(
    ("provider", "account"), [("google", GOOGLE_ACCOUNT), ("outlook", OUTLOOK_ACCOUNT)]
)
def test_learner_connects_a_calendar_from_the_settings_page(
    learner_client, learner, sandbox_settings, provider, account
):
    page = learner_client.get(reverse("settings_calendars"))
    assert reverse("calendars:connect", args=[provider]) in page.text

    location = _start(learner_client, provider)
    assert location.startswith(sandbox_settings.http_url)
    response = _back(
        learner_client, consent_redirect(sandbox_settings, provider, location, account)
    )

    assert response.redirect_chain[-1][0] == reverse("settings_calendars")
    assert any("est connecté" in m for m in messages_of(response))
    integration = CalendarIntegration.objects.get(user=learner, provider=provider)
    assert integration.account_email == account
    assert integration.status == CalendarIntegration.Status.CONNECTED
    assert integration.scopes
    assert integration.token_expires_at > timezone.now()
    assert (integration.import_enabled, integration.export_enabled, integration.sync_enabled) == (
        True,
        True,
        True,
    )
    assert account in response.text
    assert not OAuthState.objects.exists()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_denied_consent_ends_on_the_settings_page_and_stores_nothing(
    learner_client, sandbox_settings, provider
):
    location = _start(learner_client, provider)
    denied = consent_redirect(sandbox_settings, provider, location, None, accept=False)
    response = _back(learner_client, denied)
    assert response.redirect_chain[-1][0] == reverse("settings_calendars")
    assert messages_of(response) == [
        "Vous avez refusé l'accès à votre agenda : rien n'a été connecté."
    ]
    assert not CalendarIntegration.objects.exists()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_callback_with_a_state_that_does_not_match_is_refused(
    learner_client, sandbox_settings, provider
):
    location = _start(learner_client, provider)
    back = consent_redirect(sandbox_settings, provider, location, ACCOUNT[provider])
    tampered = back.replace("state=", "state=x")
    response = _back(learner_client, tampered)
    assert "inconnue ou a déjà servi" in messages_of(response)[0]
    assert not CalendarIntegration.objects.exists()


def test_replayed_callback_is_refused_and_changes_nothing(
    learner_client, learner, sandbox_settings
):
    location = _start(learner_client, "google")
    back = consent_redirect(sandbox_settings, "google", location, GOOGLE_ACCOUNT)
    _back(learner_client, back)
    first = CalendarIntegration.objects.get(user=learner)
    replay = _back(learner_client, back)
    assert "inconnue ou a déjà servi" in messages_of(replay)[0]
    assert CalendarIntegration.objects.get(user=learner).credentials == first.credentials


def test_expired_flow_is_refused(learner_client, sandbox_settings):
    location = _start(learner_client, "google")
    back = consent_redirect(sandbox_settings, "google", location, GOOGLE_ACCOUNT)
    OAuthState.objects.update(created_at=timezone.now() - timedelta(minutes=11))
    response = _back(learner_client, back)
    assert messages_of(response) == ["Cette demande de connexion a expiré. Recommencez."]
    assert not CalendarIntegration.objects.exists()


def test_flow_started_by_another_learner_is_refused(
    learner_client, make_user, client, sandbox_settings
):
    location = _start(learner_client, "google")
    back = consent_redirect(sandbox_settings, "google", location, GOOGLE_ACCOUNT)
    other = make_user()
    client.force_login(other)
    response = _back(client, back)
    assert "inconnue ou a déjà servi" in messages_of(response)[0]
    assert not CalendarIntegration.objects.exists()


@pytest.mark.parametrize(("provider", "endpoint"), [("google", "google.token"),
                                                    ("outlook", "microsoft.token")])  # fmt: skip
def test_provider_error_at_the_token_endpoint_is_explained_and_stores_nothing(
    learner_client, sandbox_settings, provider, endpoint
):
    location = _start(learner_client, provider)
    back = consent_redirect(sandbox_settings, provider, location, ACCOUNT[provider])
    sandbox_settings.add_fault("server_error", endpoint=endpoint, times=0)
    response = _back(learner_client, back)
    # What to do, not the provider's words (they are logged).
    assert messages_of(response) == [
        "La connexion n'a pas abouti : le fournisseur n'a pas répondu comme prévu. "
        "Recommencez dans un instant."
    ]
    assert not CalendarIntegration.objects.exists()


def test_unconfigured_provider_shows_as_unavailable(learner_client, settings):
    settings.OUTLOOK_CLIENT_ID = settings.OUTLOOK_CLIENT_SECRET = ""
    page = learner_client.get(reverse("settings_calendars"))
    assert "Indisponible" in page.text
    assert reverse("calendars:connect", args=["outlook"]) not in page.text
    response = learner_client.post(reverse("calendars:connect", args=["outlook"]), follow=True)
    assert messages_of(response) == ["Ce fournisseur n'est pas configuré."]


def test_unknown_provider_is_404(learner_client):
    assert learner_client.post(reverse("calendars:connect", args=["yahoo"])).status_code == 404
    assert learner_client.get(reverse("calendars:callback", args=["yahoo"])).status_code == 404


def test_connect_requires_post(learner_client):
    assert learner_client.get(reverse("calendars:connect", args=["google"])).status_code == 405


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


def test_microsoft_sign_in_service_down_ends_with_a_message(learner_client, sandbox_settings):
    sandbox_settings.add_fault("server_error", endpoint="microsoft.openid", times=0)
    response = learner_client.post(reverse("calendars:connect", args=["outlook"]), follow=True)
    assert response.status_code == 200
    assert "injoignable" in response.text
