"""The JSON API under /api/calendar-integration/, against the sandbox, through the real flow."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from calendars.errors import ProviderError, ReconnectRequired
from calendars.models import CalendarIntegration, OAuthState
from calendars.services.connection import integration_connect_start
from tests.calendars.client_helpers import BASE, call, error_of
from tests.calendars.connect_helpers import (
    GOOGLE_ACCOUNT,
    OUTLOOK_ACCOUNT,
    connect,
    consent_redirect,
)

ACCOUNT = {"google": GOOGLE_ACCOUNT, "outlook": OUTLOOK_ACCOUNT}
PROVIDERS = ["google", "outlook"]
ENDPOINTS = [
    ("get", f"{BASE}/google/auth-url", None),
    ("post", f"{BASE}/google/callback", {"code": "c", "state": "s"}),
    ("get", f"{BASE}/integrations", None),
    ("put", f"{BASE}/integrations/google/settings", {"import": False}),
    ("delete", f"{BASE}/integrations/google", None),
    ("post", f"{BASE}/google/import", None),
    ("post", f"{BASE}/google/export-formation", {"formationId": 1}),
]


def auth_url(client: Client, provider: str) -> str:
    response = client.get(f"{BASE}/{provider}/auth-url")
    assert response.status_code == 200, response.content
    return response.json()["authUrl"]


def callback_params(sandbox, provider: str, url: str, **kwargs) -> dict[str, str]:
    back = consent_redirect(sandbox, provider, url, kwargs.get("email", ACCOUNT[provider]),
                            accept=kwargs.get("accept", True))  # fmt: skip
    return dict(parse_qsl(urlsplit(back).query))


@pytest.fixture
def csrf_client(learner) -> Client:
    """A signed-in browser, with the CSRF checks that the test client skips by default."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(learner)
    client.get(reverse("settings"))  # sets the csrftoken cookie, as any page would
    return client


def csrf_header(client: Client) -> dict[str, str]:
    return {"X-CSRFToken": client.cookies["csrftoken"].value}


# --- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_endpoint_answers_401_json_without_authentication(client, db, method, path, body):
    response = call(client, method, path, body)
    assert error_of(response, 401)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS[1:2] + ENDPOINTS[3:])
def test_session_calls_that_change_things_need_the_csrf_token(
    csrf_client, learner, sandbox_settings, method, path, body
):
    connect(sandbox_settings, learner, "google")

    refused = call(csrf_client, method, path, body)

    assert error_of(refused, 403)["code"] == "csrf_failed"
    assert CalendarIntegration.objects.get(user=learner).import_enabled
    accepted = call(csrf_client, method, path, body, **csrf_header(csrf_client))
    assert accepted.status_code != 403


def test_session_reads_need_no_csrf_token(csrf_client):
    assert call(csrf_client, "get", f"{BASE}/integrations").json() == []


def test_bearer_token_authenticates_without_session_or_csrf(db, learner, bearer, sandbox_settings):
    connect(sandbox_settings, learner, "google")
    client = Client(enforce_csrf_checks=True)

    listed = call(client, "get", f"{BASE}/integrations", **bearer)
    changed = call(client, "put", f"{BASE}/integrations/google/settings", {"sync": False}, **bearer)

    assert [i["accountEmail"] for i in listed.json()] == [GOOGLE_ACCOUNT]
    assert changed.status_code == 200
    assert changed.json()["sync"] is False


def test_revoked_or_unknown_bearer_tokens_are_refused(client, learner, learner_client, bearer):
    token = bearer["Authorization"].removeprefix("Bearer ")
    row = learner.api_tokens.get()
    learner_client.post(reverse("settings_api_revoke", args=[row.pk]))

    for header in (token, "fcal_not-a-token", "nonsense"):
        response = call(client, "get", f"{BASE}/integrations", Authorization=f"Bearer {header}")
        assert error_of(response, 401)["code"] == "invalid_token"
        assert token not in response.text


def test_a_wrong_bearer_token_is_refused_even_with_a_session(learner_client):
    response = call(learner_client, "get", f"{BASE}/integrations", Authorization="Bearer nope")
    assert error_of(response, 401)["code"] == "invalid_token"


# --- connecting -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_auth_url_points_at_the_providers_authorization_endpoint(
    learner_client, learner, sandbox_settings, provider
):
    url = auth_url(learner_client, provider)

    assert url.startswith(sandbox_settings.http_url) or url.startswith(sandbox_settings.https_url)
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["redirect_uri"] == f"http://testserver/calendar/callback/{provider}"
    assert query["code_challenge_method"] == "S256"
    flow = OAuthState.objects.get(user=learner, provider=provider)
    assert query["state"] == flow.state


def test_auth_url_uses_the_configured_redirect_uri(learner_client, sandbox_settings, settings):
    settings.GOOGLE_REDIRECT_URI = "https://formations.example.com/calendar/callback/google"
    url = auth_url(learner_client, "google")
    assert dict(parse_qsl(urlsplit(url).query))["redirect_uri"] == settings.GOOGLE_REDIRECT_URI


def test_auth_url_of_an_unconfigured_provider_is_503(learner_client, settings):
    settings.OUTLOOK_CLIENT_ID = settings.OUTLOOK_CLIENT_SECRET = ""
    response = learner_client.get(f"{BASE}/outlook/auth-url")
    assert error_of(response, 503)["code"] == "unavailable"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_learner_connects_a_calendar_through_the_api(
    learner_client, learner, sandbox_settings, provider
):
    params = callback_params(sandbox_settings, provider, auth_url(learner_client, provider))

    response = call(learner_client, "post", f"{BASE}/{provider}/callback", params)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["type"] == provider
    assert body["accountEmail"] == ACCOUNT[provider]
    assert body["status"] == "connected"
    assert (body["import"], body["export"], body["sync"]) == (True, True, True)
    assert body["scopes"]
    integration = CalendarIntegration.objects.get(user=learner, provider=provider)
    assert integration.status == CalendarIntegration.Status.CONNECTED
    assert not OAuthState.objects.exists()


def test_callback_with_a_wrong_state_is_refused(learner_client, sandbox_settings):
    params = callback_params(sandbox_settings, "google", auth_url(learner_client, "google"))

    response = call(
        learner_client, "post", f"{BASE}/google/callback", {**params, "state": "forged"}
    )

    assert error_of(response, 400)["code"] == "invalid_state"
    assert not CalendarIntegration.objects.exists()


def test_replayed_callback_is_refused(learner_client, sandbox_settings):
    params = callback_params(sandbox_settings, "google", auth_url(learner_client, "google"))
    assert call(learner_client, "post", f"{BASE}/google/callback", params).status_code == 200
    replay = call(learner_client, "post", f"{BASE}/google/callback", params)
    assert error_of(replay, 400)["code"] == "invalid_state"


def test_callback_for_a_flow_another_learner_started_is_refused(
    learner_client, make_user, sandbox_settings
):
    url = integration_connect_start(
        user=make_user(), provider_name="google", redirect_uri="http://testserver/x"
    )
    params = callback_params(sandbox_settings, "google", url)
    response = call(learner_client, "post", f"{BASE}/google/callback", params)
    assert error_of(response, 400)["code"] == "invalid_state"
    assert not CalendarIntegration.objects.exists()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_denied_consent_is_a_400_and_stores_nothing(learner_client, sandbox_settings, provider):
    url = auth_url(learner_client, provider)
    params = callback_params(sandbox_settings, provider, url, email=None, accept=False)
    assert "error" in params

    response = call(learner_client, "post", f"{BASE}/{provider}/callback", params)

    assert error_of(response, 400)["code"] == "denied"
    assert not CalendarIntegration.objects.exists()


def test_provider_failure_during_the_callback_is_a_502(learner_client, sandbox_settings):
    params = callback_params(sandbox_settings, "google", auth_url(learner_client, "google"))
    sandbox_settings.add_fault("server_error", endpoint="google.token", times=0)

    response = call(learner_client, "post", f"{BASE}/google/callback", params)

    assert error_of(response, 502)["code"] == "provider_error"
    assert params["code"] not in response.text
    assert not CalendarIntegration.objects.exists()


# --- listing, settings, disconnecting ---------------------------------------------------


def test_integration_list_holds_no_secret(learner_client, learner, make_user, sandbox_settings):
    connect(sandbox_settings, learner, "google")
    connect(sandbox_settings, learner, "outlook")
    connect(sandbox_settings, make_user(), "google", email="sam.nguyen@gmail.test")

    response = learner_client.get(f"{BASE}/integrations")

    body = response.json()
    assert [(i["type"], i["accountEmail"]) for i in body] == [
        ("google", GOOGLE_ACCOUNT),
        ("outlook", OUTLOOK_ACCOUNT),
    ]
    assert set(body[0]) == {
        "type", "accountEmail", "accountName", "status", "import", "export", "sync",
        "scopes", "connectedAt", "lastSyncAt", "lastError", "lastErrorCode", "lastRun",
        "formationsInCalendar",
    }  # fmt: skip
    assert body[0]["lastRun"] is None
    issued = sandbox_settings.google.issued_tokens() | sandbox_settings.microsoft.issued_tokens()
    assert issued
    assert not [token for token in issued if token in response.text]
    keys = {key.lower() for item in body for key in item}
    assert not [key for key in keys if "token" in key or "credential" in key or "secret" in key]


def test_settings_change_only_the_choices_sent(learner_client, learner, sandbox_settings):
    connect(sandbox_settings, learner, "outlook")

    response = call(
        learner_client, "put", f"{BASE}/integrations/outlook/settings", {"import": False}
    )

    assert response.status_code == 200
    assert (response.json()["import"], response.json()["export"]) == (False, True)
    integration = CalendarIntegration.objects.get(user=learner)
    assert (integration.import_enabled, integration.export_enabled) == (False, True)
    assert (integration.sync_enabled, integration.status) == (True, "connected")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"import": ', "malformed_request"),
        ("[]", "invalid_input"),
        ('"import"', "invalid_input"),
        ({"import": "maybe"}, "invalid_input"),
        ({"import": 1}, "invalid_input"),
        ({"sync": None, "export": "false"}, "invalid_input"),
        ({"imports": True}, "invalid_input"),
    ],
)
def test_bad_settings_input_is_a_400_json(learner_client, learner, sandbox_settings, body, code):
    connect(sandbox_settings, learner, "google")
    response = call(learner_client, "put", f"{BASE}/integrations/google/settings", body)
    assert error_of(response, 400)["code"] == code
    assert CalendarIntegration.objects.get(user=learner).export_enabled


def test_bad_callback_input_is_a_400_json(learner_client):
    for body in ({"code": "c"}, {"state": ["s"]}, {"state": "s" * 500}, "nope"):
        response = call(learner_client, "post", f"{BASE}/google/callback", body)
        assert error_of(response, 400)["code"] in {"invalid_input", "malformed_request"}


def test_validation_errors_name_the_fields(learner_client):
    response = call(learner_client, "put", f"{BASE}/integrations/google/settings", {"sync": 3})
    assert error_of(response, 400)["fields"] == [
        {"field": "sync", "message": "Input should be a valid boolean"}
    ]


def test_disconnect_revokes_at_google_and_forgets_the_integration(
    learner_client, learner, sandbox_settings
):
    integration = connect(sandbox_settings, learner, "google")
    refresh_token = integration.get_credentials()["refresh_token"]
    assert not sandbox_settings.google.refresh_tokens[refresh_token].revoked

    response = learner_client.delete(f"{BASE}/integrations/google")

    assert response.status_code == 204
    assert response.content == b""
    assert not CalendarIntegration.objects.exists()
    assert sandbox_settings.google.refresh_tokens[refresh_token].revoked


def test_disconnect_outlook_forgets_the_integration(learner_client, learner, sandbox_settings):
    connect(sandbox_settings, learner, "outlook")
    assert learner_client.delete(f"{BASE}/integrations/outlook").status_code == 204
    assert not CalendarIntegration.objects.exists()


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS[3:])
def test_another_learners_integration_is_404(
    learner_client, make_user, sandbox_settings, method, path, body
):
    theirs = connect(sandbox_settings, make_user(), "google")

    response = call(learner_client, method, path, body)

    assert error_of(response, 404)["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.import_enabled


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", f"{BASE}/yahoo/auth-url", None),
        ("post", f"{BASE}/yahoo/callback", {"code": "c", "state": "s"}),
        ("put", f"{BASE}/integrations/yahoo/settings", {"import": True}),
        ("delete", f"{BASE}/integrations/yahoo", None),
    ],
)
def test_unknown_provider_is_404_json(learner_client, method, path, body):
    assert error_of(call(learner_client, method, path, body), 404)["code"] == "unknown_provider"


def test_unknown_paths_and_wrong_methods_answer_in_json(learner_client):
    assert error_of(learner_client.get(f"{BASE}/nope"), 404)["code"] == "not_found"
    assert error_of(learner_client.post("/api/"), 404)["code"] == "not_found"
    wrong = learner_client.post(f"{BASE}/integrations")
    assert error_of(wrong, 405)["code"] == "method_not_allowed"
    assert wrong["Allow"] == "GET"


def test_unexpected_failures_are_a_json_500(learner_client, learner, sandbox_settings, monkeypatch):
    connect(sandbox_settings, learner, "google")

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("calendars.api.operations.integration_update_settings", broken)
    response = call(learner_client, "put", f"{BASE}/integrations/google/settings", {"sync": True})
    assert error_of(response, 500)["code"] == "server_error"
    assert "boom" not in response.text


# --- documentation ----------------------------------------------------------------------


def test_docs_render_for_signed_in_learners_only(client, learner_client):
    docs = learner_client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text
    schema = learner_client.get("/api/openapi.json").json()
    assert set(schema["paths"]) == {
        f"{BASE}/{{provider}}/auth-url",
        f"{BASE}/{{provider}}/callback",
        f"{BASE}/{{provider}}/connect",
        f"{BASE}/{{provider}}/export-formation",
        f"{BASE}/integrations",
        f"{BASE}/integrations/{{type}}/settings",
        f"{BASE}/integrations/{{type}}",
        f"{BASE}/{{provider}}/import",
        f"{BASE}/events",
        f"{BASE}/formations/{{id}}",
        f"{BASE}/formations/{{id}}/conflicts/{{eventId}}/dismissal",
    }
    integration = schema["components"]["schemas"]["IntegrationOut"]["properties"]
    assert {"accountEmail", "import", "lastSyncAt"} <= set(integration)

    anonymous = client.get("/api/docs")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("login"))


def test_provider_failures_outside_a_connection_are_json(
    learner_client, learner, sandbox_settings, monkeypatch
):
    connect(sandbox_settings, learner, "google")
    failures = iter([ReconnectRequired("Google: revoked"), ProviderError("down", retry_after=7)])

    def failing(**kwargs):
        raise next(failures)

    monkeypatch.setattr("calendars.api.operations.integration_update_settings", failing)
    path = f"{BASE}/integrations/google/settings"

    gone = call(learner_client, "put", path, {"sync": True})
    assert error_of(gone, 409)["code"] == "needs_reconnect"
    down = call(learner_client, "put", path, {"sync": True})
    assert error_of(down, 503)["code"] == "provider_error"
    assert down["Retry-After"] == "7"


def test_integrations_give_their_last_sync(learner_client, learner, sandbox_settings):
    from django.core.serializers.json import DjangoJSONEncoder

    from calendars import tasks
    from calendars.models import SyncRun

    integration = connect(sandbox_settings, learner, "outlook")
    tasks.sync_integration(integration.pk, SyncRun.Trigger.MANUAL)
    run = integration.sync_runs.get()

    (body,) = learner_client.get(f"{BASE}/integrations").json()

    assert body["lastRun"] == {
        "trigger": "manual",
        "direction": "both",
        "startedAt": DjangoJSONEncoder().default(run.started_at),
        "finishedAt": DjangoJSONEncoder().default(run.finished_at),
        "created": run.created,
        "updated": 0,
        "deleted": 0,
        "skipped": run.skipped,
        "error": "",
        "errorCode": None,
    }
    assert body["lastSyncAt"] is not None


# --- bodies no client sends --------------------------------------------------------------


def test_a_body_over_the_upload_limit_is_a_413_in_the_api_format(
    learner_client, sandbox_settings, learner, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    connect(sandbox_settings, learner, "google")

    response = call(learner_client, "put", f"{BASE}/integrations/google/settings",
                    {"import": False, "padding": "x" * 2000})  # fmt: skip

    error = error_of(response, 413)
    assert error["code"] == "payload_too_large"
    assert "moins de données" in error["message"]
    # Within the limit, the same call goes through.
    assert call(learner_client, "put", f"{BASE}/integrations/google/settings",
                {"import": False}).status_code == 200  # fmt: skip


def test_a_body_nested_too_deeply_is_a_400_not_an_error(learner_client, sandbox_settings, learner):
    connect(sandbox_settings, learner, "google")
    depth = 100_000
    body = '{"import": ' + "[" * depth + "]" * depth + "}"

    response = call(learner_client, "put", f"{BASE}/integrations/google/settings", body)

    assert error_of(response, 400)["code"] == "malformed_request"


def test_the_schema_documents_the_413(learner_client):
    schema = learner_client.get("/api/openapi.json").json()
    settings_put = schema["paths"][f"{BASE}/integrations/{{type}}/settings"]["put"]
    assert "413" in settings_put["responses"]
