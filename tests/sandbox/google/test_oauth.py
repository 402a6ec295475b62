"""Google OAuth 2.0 in the sandbox, through google-auth-oauthlib, google-auth and requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import google.auth.transport.requests
import jwt
import pytest
import requests
from google.auth.exceptions import RefreshError
from google.oauth2 import id_token
from googleapiclient.errors import HttpError
from oauthlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidGrantError

from sandbox.constants import GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET
from tests.sandbox.google.helpers import (
    ALEX,
    CALENDAR_EVENTS,
    CAMILLE,
    REDIRECT_URI,
    SAM,
    USERINFO_EMAIL,
    calendar_service,
    consent,
    google_credentials,
    make_flow,
    read_consent_page,
    redirect_params,
)


def token_request(sandbox, **form):
    return requests.post(
        f"{sandbox.http_url}/token",
        data=form,
        auth=(GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET),
        timeout=5,
    )


def test_authorization_code_flow_with_pkce_gives_refreshable_credentials(sandbox):
    flow = make_flow(sandbox)
    auth_url, state = flow.authorization_url(prompt="consent", login_hint=CAMILLE)
    assert "code_challenge_method=S256" in auth_url

    location = consent(sandbox, auth_url, CAMILLE)
    params = redirect_params(location)
    assert location.startswith(REDIRECT_URI + "?")
    assert params["state"] == state
    assert set(params["scope"].split()) == set(flow.oauth2session.scope)

    flow.fetch_token(authorization_response=location)
    credentials = flow.credentials
    assert credentials.token.startswith("ya29.")
    assert credentials.refresh_token
    assert credentials.expiry > datetime.now(UTC).replace(tzinfo=None)
    entries = calendar_service(sandbox, credentials).calendarList().list().execute()["items"]
    assert CAMILLE in {entry["id"] for entry in entries}
    assert sandbox.count("google.token") == 1


def test_id_token_verifies_against_both_certificate_endpoints(sandbox):
    flow = make_flow(sandbox)
    auth_url, _ = flow.authorization_url(prompt="consent", nonce="n-0S6_WzA2Mj")
    flow.fetch_token(authorization_response=consent(sandbox, auth_url, ALEX))
    transport = google.auth.transport.requests.Request()
    # verify_oauth2_token has no certs_url parameter (it always asks www.googleapis.com), so
    # the application must call verify_token with the issuer check of its own.
    for path in ("/oauth2/v1/certs", "/oauth2/v3/certs"):
        claims = id_token.verify_token(
            flow.credentials.id_token,
            transport,
            audience=GOOGLE_CLIENT_ID,
            certs_url=sandbox.http_url + path,
        )
        assert claims["iss"] == "https://accounts.google.com"
        assert claims["email"] == ALEX
        assert claims["email_verified"] is True
        assert claims["nonce"] == "n-0S6_WzA2Mj"
        assert claims["sub"] == sandbox.store.account(ALEX).uid
    assert jwt.get_unverified_header(flow.credentials.id_token)["alg"] == "RS256"


def test_consent_page_lists_google_accounts_and_preselects_the_login_hint(sandbox):
    flow = make_flow(sandbox)
    auth_url, _ = flow.authorization_url(login_hint=SAM, state="<script>x</script>")
    page = requests.get(auth_url, timeout=5)
    form = read_consent_page(page.text)

    assert page.status_code == 200
    assert form.accounts == [a.email for a in sandbox.store.accounts_of("google")]
    assert form.checked == SAM
    assert form.fields["state"] == "<script>x</script>"
    assert "<script>x" not in page.text
    assert 'id="allow"' in page.text and 'id="deny"' in page.text
    assert "View and edit events on all your calendars" in page.text


def test_deny_redirects_with_access_denied(sandbox):
    flow = make_flow(sandbox)
    auth_url, state = flow.authorization_url()
    location = consent(sandbox, auth_url, None, decision="deny")

    assert redirect_params(location) == {"error": "access_denied", "state": state}
    with pytest.raises(AccessDeniedError):
        flow.fetch_token(authorization_response=location)


def test_unknown_client_gets_an_error_page_and_no_redirect(sandbox):
    answer = requests.get(
        f"{sandbox.http_url}/o/oauth2/v2/auth",
        params={
            "client_id": "stranger.apps.googleusercontent.com",
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": CALENDAR_EVENTS,
        },
        timeout=5,
        allow_redirects=False,
    )
    assert answer.status_code == 400
    assert "invalid_client" in answer.text
    assert "Location" not in answer.headers


def test_authorization_request_without_scope_is_refused_on_the_page(sandbox):
    answer = requests.get(
        f"{sandbox.http_url}/o/oauth2/v2/auth",
        params={
            "client_id": GOOGLE_CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
        },
        timeout=5,
        allow_redirects=False,
    )
    assert answer.status_code == 400
    assert "Missing required parameter: scope" in answer.text


def test_pkce_verifier_mismatch_is_invalid_grant(sandbox):
    flow = make_flow(sandbox)
    auth_url, _ = flow.authorization_url()
    location = consent(sandbox, auth_url, CAMILLE)
    flow.code_verifier = "x" * 64  # not the one whose hash was sent

    with pytest.raises(InvalidGrantError):
        flow.fetch_token(authorization_response=location)


def test_code_reuse_is_invalid_grant_and_revokes_what_the_code_gave(sandbox):
    flow = make_flow(sandbox)
    auth_url, _ = flow.authorization_url(prompt="consent")
    location = consent(sandbox, auth_url, CAMILLE)
    flow.fetch_token(authorization_response=location)
    first = flow.credentials

    with pytest.raises(InvalidGrantError):
        flow.fetch_token(authorization_response=location)
    with pytest.raises(RefreshError, match="invalid_grant"):
        first.refresh(google.auth.transport.requests.Request())


def test_expired_code_is_invalid_grant(sandbox, monkeypatch):
    monkeypatch.setattr(sandbox.options, "code_lifetime", 0)
    flow = make_flow(sandbox)
    auth_url, _ = flow.authorization_url()
    location = consent(sandbox, auth_url, CAMILLE)

    with pytest.raises(InvalidGrantError):
        flow.fetch_token(authorization_response=location)


def test_code_exchange_needs_the_same_redirect_uri(sandbox):
    flow = make_flow(sandbox)
    auth_url, _ = flow.authorization_url()
    code = redirect_params(consent(sandbox, auth_url, CAMILLE))["code"]

    answer = token_request(
        sandbox,
        grant_type="authorization_code",
        code=code,
        redirect_uri="http://127.0.0.1:9999/elsewhere",
        code_verifier=flow.code_verifier,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "redirect_uri_mismatch"


def test_token_endpoint_refuses_a_wrong_client_secret(sandbox):
    answer = requests.post(
        f"{sandbox.http_url}/token",
        data={"grant_type": "refresh_token", "refresh_token": "1//0nope"},
        auth=(GOOGLE_CLIENT_ID, "not-the-secret"),
        timeout=5,
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_unsupported_grant_type_is_refused(sandbox):
    answer = token_request(sandbox, grant_type="password", username="u", password="p")
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


def test_refresh_keeps_the_refresh_token_and_fails_once_revoked(sandbox):
    credentials = google_credentials(sandbox, CAMILLE)
    refresh_token, first_token = credentials.refresh_token, credentials.token
    transport = google.auth.transport.requests.Request()

    credentials.refresh(transport)
    assert credentials.token != first_token
    assert credentials.refresh_token == refresh_token  # Google's do not rotate
    answer = requests.post(
        f"{sandbox.http_url}/revoke", data={"token": credentials.token}, timeout=5
    )
    assert answer.status_code == 200

    with pytest.raises(RefreshError, match="Token has been expired or revoked"):
        credentials.refresh(transport)
    old = calendar_service(sandbox, credentials)
    with pytest.raises(RefreshError):
        old.calendarList().list().execute()  # 401, then the refresh fails


def test_revoke_account_revokes_every_grant_of_the_account(sandbox):
    first = google_credentials(sandbox, SAM)
    second = google_credentials(sandbox, SAM)
    other = google_credentials(sandbox, ALEX)

    response = requests.post(f"{sandbox.http_url}/_sandbox/api/accounts/{SAM}/revoke", timeout=5)
    assert response.status_code == 204
    transport = google.auth.transport.requests.Request()
    for credentials in (first, second):
        with pytest.raises(RefreshError, match="invalid_grant"):
            credentials.refresh(transport)
    other.refresh(transport)


def test_revoking_an_unknown_token_is_invalid_token(sandbox):
    answer = requests.post(f"{sandbox.http_url}/revoke", params={"token": "ya29.nope"}, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_token"


def test_expired_credentials_are_refreshed_before_the_call(sandbox):
    credentials = google_credentials(sandbox, ALEX)
    credentials.expiry = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    sandbox.reset_counters()

    calendar_service(sandbox, credentials).calendarList().list().execute()
    assert sandbox.count("google.token") == 1
    assert sandbox.count("google.calendarList.list") == 1


def test_token_expired_at_the_server_is_refreshed_after_401_and_the_call_retried(sandbox):
    credentials = google_credentials(sandbox, ALEX)
    service = calendar_service(sandbox, credentials)
    sandbox.google.expire_access_tokens(sandbox.store.account(ALEX))
    sandbox.reset_counters()

    # The expiry the library knows is still in the future: the 401 makes it refresh.
    entries = service.calendarList().list().execute()["items"]
    assert entries
    assert sandbox.count("google.calendarList.list") == 2
    assert sandbox.count("google.token") == 1


def test_no_new_refresh_token_without_prompt_consent_once_one_was_given(sandbox):
    google_credentials(sandbox, CAMILLE)  # with prompt=consent: a refresh token
    flow = make_flow(sandbox)
    auth_url, _ = flow.authorization_url(login_hint=CAMILLE)  # offline, but no prompt
    flow.fetch_token(authorization_response=consent(sandbox, auth_url, CAMILLE))

    assert flow.credentials.token
    assert flow.credentials.refresh_token is None


def test_short_scope_names_come_back_long_as_google_answers(sandbox, monkeypatch):
    flow = make_flow(sandbox, ["openid", "email", CALENDAR_EVENTS])
    auth_url, _ = flow.authorization_url(prompt="consent")
    location = consent(sandbox, auth_url, CAMILLE)
    with pytest.raises(Warning, match="Scope has changed"):
        flow.fetch_token(authorization_response=location)

    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    flow = make_flow(sandbox, ["openid", "email", CALENDAR_EVENTS])
    auth_url, _ = flow.authorization_url(prompt="consent")
    flow.fetch_token(authorization_response=consent(sandbox, auth_url, CAMILLE))
    assert USERINFO_EMAIL in flow.credentials.granted_scopes


def test_userinfo_answers_for_the_bearer_token(sandbox):
    credentials = google_credentials(sandbox, SAM)
    answer = requests.get(
        f"{sandbox.http_url}/oauth2/v3/userinfo",
        headers={"Authorization": f"Bearer {credentials.token}"},
        timeout=5,
    )
    assert answer.status_code == 200
    assert answer.json()["email"] == SAM
    assert answer.json()["sub"] == sandbox.store.account(SAM).uid
    assert sandbox.count("google.userinfo") == 1


def test_a_token_without_calendar_scopes_gets_403_insufficient_permissions(sandbox):
    credentials = google_credentials(sandbox, CAMILLE, ["openid", USERINFO_EMAIL])
    service = calendar_service(sandbox, credentials)

    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId="primary").execute()
    assert caught.value.status_code == 403
    body = json.loads(caught.value.content)["error"]
    assert body["errors"][0]["reason"] == "insufficientPermissions"
    assert body["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


def test_calendar_events_scope_does_not_list_calendars(sandbox):
    credentials = google_credentials(sandbox, CAMILLE, ["openid", USERINFO_EMAIL, CALENDAR_EVENTS])
    service = calendar_service(sandbox, credentials)

    assert "items" in service.events().list(calendarId="primary", maxResults=1).execute()
    with pytest.raises(HttpError) as caught:
        service.calendarList().list().execute()
    assert caught.value.status_code == 403


def test_plain_pkce_challenge_is_accepted_as_google_does(sandbox):
    verifier = "v" * 50
    flow = make_flow(sandbox)
    flow.code_verifier = verifier
    auth_url, _ = flow.authorization_url(code_challenge=verifier, code_challenge_method="plain")
    code = redirect_params(consent(sandbox, auth_url, CAMILLE))["code"]

    answer = token_request(
        sandbox,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=verifier,
    )
    assert answer.status_code == 200
    assert answer.json()["token_type"] == "Bearer"


def test_google_auth_retries_the_token_endpoint_after_a_server_error(sandbox):
    credentials = google_credentials(sandbox, CAMILLE)
    sandbox.reset_counters()
    sandbox.add_fault("server_error", endpoint="google.token")

    credentials.refresh(google.auth.transport.requests.Request())  # after a 1 s back-off
    assert sandbox.count("google.token") == 2


def test_prompt_none_answers_without_a_page_for_scopes_already_granted(sandbox):
    google_credentials(sandbox, CAMILLE)
    flow = make_flow(sandbox)
    auth_url, _ = flow.authorization_url(prompt="none", login_hint=CAMILLE)
    answer = requests.get(auth_url, timeout=5, allow_redirects=False)
    assert answer.status_code == 302
    flow.fetch_token(authorization_response=answer.headers["Location"])
    assert flow.credentials.token

    wider = make_flow(
        sandbox, [*flow.oauth2session.scope, "https://www.googleapis.com/auth/calendar"]
    )
    auth_url, _ = wider.authorization_url(prompt="none", login_hint=CAMILLE)
    answer = requests.get(auth_url, timeout=5, allow_redirects=False)
    assert redirect_params(answer.headers["Location"])["error"] == "consent_required"
