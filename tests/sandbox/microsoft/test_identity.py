"""The sandbox's Microsoft identity platform, through msal and a browser-like `requests`."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import parse_qsl, urlsplit

import jwt
import msal
import pytest
import requests

from sandbox.store import CONSUMERS_TENANT_ID, CONTOSO_TENANT_ID
from tests.sandbox.microsoft.helpers import (
    PERSONAL,
    REDIRECT_URI,
    SCOPES,
    WORK,
    WORK_2,
    ConsentPage,
    Graph,
    callback_params,
    http_session,
    msal_app,
    open_consent,
    raw_token_request,
    sign_in,
    submit_consent,
)


def decode_part(value: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")


@pytest.mark.parametrize(
    ("tenant", "issuer_tenant"),
    [
        ("common", "{tenantid}"),
        ("organizations", "{tenantid}"),
        ("consumers", CONSUMERS_TENANT_ID),
        (CONTOSO_TENANT_ID, CONTOSO_TENANT_ID),
        ("contoso.test", CONTOSO_TENANT_ID),
    ],
)
def test_openid_configuration_sends_the_browser_to_plain_http_and_the_rest_to_https(
    sandbox, tenant, issuer_tenant
):
    response = http_session(sandbox).get(
        f"{sandbox.https_url}/{tenant}/v2.0/.well-known/openid-configuration", timeout=5
    )

    assert response.status_code == 200
    config = response.json()
    assert config["issuer"] == f"{sandbox.https_url}/{issuer_tenant}/v2.0"
    assert config["authorization_endpoint"].startswith(f"{sandbox.http_url}/")
    assert config["token_endpoint"].startswith(f"{sandbox.https_url}/")
    assert config["jwks_uri"].startswith(f"{sandbox.https_url}/")
    assert config["token_endpoint"].endswith("/oauth2/v2.0/token")
    assert "RS256" in config["id_token_signing_alg_values_supported"]
    assert {"openid", "offline_access"} <= set(config["scopes_supported"])
    assert "tenant_region_scope" in config


def test_msal_refuses_an_unknown_tenant(sandbox):
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal_app(sandbox, "nowhere.example")


@pytest.mark.parametrize(
    ("tenant", "email"),
    [
        ("common", WORK),
        ("common", PERSONAL),
        ("organizations", WORK_2),
        ("consumers", PERSONAL),
        (CONTOSO_TENANT_ID, WORK),
        ("contoso.test", WORK_2),
    ],
)
def test_authorization_code_flow_through_msal_signs_the_account_in(sandbox, tenant, email):
    app, result = sign_in(sandbox, email, tenant=tenant)

    account = sandbox.store.account(email)
    claims = result["id_token_claims"]
    assert claims["preferred_username"] == email
    assert claims["oid"] == account.uid
    assert claims["tid"] == account.tenant_id
    assert claims["iss"] == f"{sandbox.https_url}/{account.tenant_id}/v2.0"
    assert decode_part(result["client_info"]) == {"uid": account.uid, "utid": account.tenant_id}
    assert [a["username"] for a in app.get_accounts()] == [email]
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == sandbox.options.access_token_lifetime
    me = Graph(sandbox, result["access_token"]).get("/me")
    assert me.json()["userPrincipalName"] == email


def test_token_response_lists_short_scope_names_without_offline_access(sandbox):
    _, result = sign_in(sandbox, WORK)

    assert set(result["scope"].split()) == {"Calendars.ReadWrite", "User.Read", "openid", "profile"}
    assert result["refresh_token"]
    assert result["ext_expires_in"] == result["expires_in"]


@pytest.mark.parametrize(
    ("tenant", "offered"),
    [
        ("common", {WORK, WORK_2, PERSONAL}),
        ("organizations", {WORK, WORK_2}),
        ("consumers", {PERSONAL}),
        (CONTOSO_TENANT_ID, {WORK, WORK_2}),
        (CONSUMERS_TENANT_ID, {PERSONAL}),
    ],
)
def test_consent_page_offers_only_the_accounts_the_tenant_allows(sandbox, tenant, offered):
    flow = msal_app(sandbox, tenant).initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI)

    page = open_consent(flow["auth_uri"])

    assert page.status == 200
    assert set(page.accounts) == offered


def test_consent_refuses_an_account_of_another_tenant(sandbox):
    flow = msal_app(sandbox, "consumers").initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI)
    page = open_consent(flow["auth_uri"])

    response = submit_consent(page, WORK)

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "AADSTS50020" in response.text


def test_consent_page_is_plain_accessible_html_with_stable_controls(sandbox):
    flow = msal_app(sandbox).initiate_auth_code_flow(
        SCOPES, redirect_uri=REDIRECT_URI, login_hint=WORK_2
    )

    page = open_consent(flow["auth_uri"])

    assert page.text.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in page.text
    assert "<script" not in page.text  # works without JavaScript
    assert '<button type="submit" name="action" value="accept" id="accept">' in page.text
    assert '<button type="submit" name="action" value="cancel" id="cancel">' in page.text
    for ident in re.findall(r'type="radio" name="account" id="([^"]+)"', page.text):
        assert f'<label for="{ident}">' in page.text
    # the login_hint account is the one chosen by default
    assert re.search(r'value="alex\.martin@contoso\.test" checked', page.text)
    assert "Have full access to your calendars" in page.text
    assert "<legend>Pick an account</legend>" in page.text


def test_sign_in_error_page_escapes_what_it_echoes(sandbox):
    response = requests.get(
        f"{sandbox.http_url}/common/oauth2/v2.0/authorize",
        params={"client_id": "<script>alert(1)</script>", "redirect_uri": REDIRECT_URI},
        timeout=5,
    )

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "AADSTS700016" in response.text


def test_cancel_on_the_consent_page_gives_access_denied_to_the_app(sandbox):
    app = msal_app(sandbox)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI)

    params = callback_params(submit_consent(open_consent(flow["auth_uri"]), None, "cancel"))

    assert params["error"] == "access_denied"
    assert params["error_description"].startswith("AADSTS65004: User declined to consent")
    assert params["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert result["error"] == "access_denied"


def test_msal_accepts_the_nonce_echoed_in_the_id_token(sandbox):
    app = msal_app(sandbox)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI)
    params = callback_params(submit_consent(open_consent(flow["auth_uri"]), WORK))

    result = app.acquire_token_by_auth_code_flow(flow, params)

    expected = hashlib.sha256(flow["nonce"].encode()).hexdigest()  # what msal sent
    assert result["id_token_claims"]["nonce"] == expected


def test_msal_rejects_an_id_token_whose_nonce_is_not_its_own(sandbox):
    app = msal_app(sandbox)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI)
    params = callback_params(submit_consent(open_consent(flow["auth_uri"]), WORK))

    with pytest.raises(RuntimeError, match="nonce"):
        app.acquire_token_by_auth_code_flow({**flow, "nonce": "another"}, params)


def test_id_token_is_signed_by_the_published_key(sandbox):
    _, result = sign_in(sandbox, WORK, tenant="organizations")
    keys = (
        http_session(sandbox)
        .get(f"{sandbox.https_url}/organizations/discovery/v2.0/keys", timeout=5)
        .json()
    )
    header = jwt.get_unverified_header(result["id_token"])
    key = next(k for k in keys["keys"] if k["kid"] == header["kid"])

    claims = jwt.decode(
        result["id_token"],
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience=msal_app(sandbox).client_id,
        issuer=f"{sandbox.https_url}/{CONTOSO_TENANT_ID}/v2.0",
    )

    assert claims["ver"] == "2.0"
    assert claims["preferred_username"] == WORK


def test_code_with_a_wrong_pkce_verifier_is_refused(sandbox):
    app = msal_app(sandbox)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI)
    params = callback_params(submit_consent(open_consent(flow["auth_uri"]), WORK))

    result = app.acquire_token_by_auth_code_flow({**flow, "code_verifier": "x" * 43}, params)

    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [501481]


def test_code_can_be_redeemed_only_once(sandbox):
    app = msal_app(sandbox)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI)
    params = callback_params(submit_consent(open_consent(flow["auth_uri"]), WORK))
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, params)

    again = raw_token_request(
        sandbox,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": flow["code_verifier"],
        },
    )

    assert again.status_code == 400
    body = again.json()
    assert body["error"] == "invalid_grant"
    assert body["error_description"].startswith("AADSTS54005")
    assert body["error_codes"] == [54005]
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)


def test_code_is_refused_with_another_redirect_uri_or_after_it_expires(sandbox, monkeypatch):
    app = msal_app(sandbox)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI)
    params = callback_params(submit_consent(open_consent(flow["auth_uri"]), WORK))
    other = raw_token_request(
        sandbox,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": "http://localhost:8000/elsewhere",
            "code_verifier": flow["code_verifier"],
        },
    )
    assert other.json()["error_codes"] == [500112]

    monkeypatch.setattr(sandbox.options, "code_lifetime", -1)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI)
    params = callback_params(submit_consent(open_consent(flow["auth_uri"]), WORK))
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [70008]


def test_wrong_client_secret_is_invalid_client(sandbox):
    response = raw_token_request(
        sandbox,
        {"grant_type": "refresh_token", "refresh_token": "x", "client_secret": "wrong"},
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "wrong" not in response.text


def test_refresh_rotates_the_refresh_token_kept_in_the_serializable_cache(sandbox, monkeypatch):
    # Under 5 minutes msal treats an access token as expired and refreshes it.
    monkeypatch.setattr(sandbox.options, "access_token_lifetime", 120)
    monkeypatch.setattr(sandbox.options, "strict_refresh_rotation", True)
    cache = msal.SerializableTokenCache()
    app, first = sign_in(sandbox, WORK, app=msal_app(sandbox, cache=cache))
    saved = cache.serialize()
    old_refresh = first["refresh_token"]
    sandbox.microsoft.expire_access_tokens(sandbox.store.account(WORK))
    assert Graph(sandbox, first["access_token"]).get("/me").status_code == 401

    cache = msal.SerializableTokenCache()
    cache.deserialize(saved)  # as the app would, from its database
    app = msal_app(sandbox, cache=cache)
    result = app.acquire_token_silent(SCOPES, account=app.get_accounts()[0])

    assert result is not None and result["token_source"] == "identity_provider"
    assert result["access_token"] != first["access_token"]
    assert cache.has_state_changed
    refresh_tokens = [rt["secret"] for rt in cache.search(cache.CredentialType.REFRESH_TOKEN)]
    assert len(refresh_tokens) == 1 and refresh_tokens[0] != old_refresh
    assert Graph(sandbox, result["access_token"]).get("/me").status_code == 200
    stale = raw_token_request(
        sandbox, {"grant_type": "refresh_token", "refresh_token": old_refresh, "scope": "User.Read"}
    )
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"
    assert stale.json()["error_codes"] == [70000]


def test_revoked_grant_fails_silent_acquisition_and_raw_refresh(sandbox, monkeypatch):
    monkeypatch.setattr(sandbox.options, "access_token_lifetime", 120)
    app, first = sign_in(sandbox, PERSONAL, tenant="consumers")
    account = sandbox.store.account(PERSONAL)

    response = requests.post(
        f"{sandbox.http_url}/_sandbox/api/accounts/{PERSONAL}/revoke", timeout=5
    )

    assert response.status_code == 204
    outcome = app.acquire_token_silent_with_error(SCOPES, account=app.get_accounts()[0])
    assert outcome["error"] == "invalid_grant"
    assert outcome["error_codes"] == [50173]
    assert app.acquire_token_silent(SCOPES, account=app.get_accounts()[0]) is None
    raw = raw_token_request(
        sandbox, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert raw.json()["error"] == "invalid_grant"
    assert Graph(sandbox, first["access_token"]).get("/me").status_code == 401
    # signing in again makes a new grant
    assert sign_in(sandbox, account.email, tenant="consumers")[1]["access_token"]


def test_refresh_token_expires_after_its_lifetime(sandbox, monkeypatch):
    monkeypatch.setattr(sandbox.options, "refresh_token_lifetime", -1)
    _, result = sign_in(sandbox, WORK)

    response = raw_token_request(
        sandbox, {"grant_type": "refresh_token", "refresh_token": result["refresh_token"]}
    )

    assert response.json()["error_codes"] == [700082]


def test_refresh_for_a_scope_never_consented_needs_consent(sandbox):
    sandbox.microsoft.revoke_account(sandbox.store.account(WORK))  # consent adds up: start afresh
    _, result = sign_in(sandbox, WORK, scopes=["Calendars.Read"])

    response = raw_token_request(
        sandbox,
        {
            "grant_type": "refresh_token",
            "refresh_token": result["refresh_token"],
            "scope": "https://graph.microsoft.com/Calendars.ReadWrite offline_access",
        },
    )

    body = response.json()
    assert body["error"] == "invalid_grant"
    assert body["suberror"] == "consent_required"
    assert body["error_codes"] == [65001]


def test_prompt_none_answers_login_required(sandbox):
    flow = msal_app(sandbox).initiate_auth_code_flow(
        SCOPES, redirect_uri=REDIRECT_URI, prompt="none"
    )

    response = requests.get(flow["auth_uri"], timeout=5, allow_redirects=False)

    assert callback_params(response)["error"] == "login_required"


def test_form_post_response_mode_posts_the_code_back(sandbox):
    app = msal_app(sandbox)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI, response_mode="form_post")

    response = submit_consent(open_consent(flow["auth_uri"]), WORK)

    assert response.status_code == 200
    assert f'action="{REDIRECT_URI}"' in response.text
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', response.text))
    assert set(fields) >= {"code", "state", "session_state", "client_info"}
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, fields)


def test_unknown_scope_is_refused_on_the_redirect(sandbox):
    flow = msal_app(sandbox).initiate_auth_code_flow(
        ["Calendars.Everything"], redirect_uri=REDIRECT_URI
    )

    response = requests.get(flow["auth_uri"], timeout=5, allow_redirects=False)

    params = dict(parse_qsl(urlsplit(response.headers["Location"]).query))
    assert params["error"] == "invalid_scope"
    assert params["state"] == flow["state"]


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("server_error", 500, "server_error"),
        ("unavailable", 503, "temporarily_unavailable"),
        ("rate_limit", 429, "temporarily_unavailable"),
    ],
)
def test_token_endpoint_faults_answer_in_the_oauth_shape(sandbox, kind, status, error):
    _, result = sign_in(sandbox, WORK_2)
    sandbox.add_fault(kind, endpoint="microsoft.token", account=WORK_2)

    response = raw_token_request(
        sandbox, {"grant_type": "refresh_token", "refresh_token": result["refresh_token"]}
    )

    assert response.status_code == status
    assert response.json()["error"] == error
    if kind != "server_error":
        assert response.headers["Retry-After"] == "1"
    # the fault hit only that request: the refresh token still works
    again = raw_token_request(
        sandbox, {"grant_type": "refresh_token", "refresh_token": result["refresh_token"]}
    )
    assert again.status_code == 200


def test_identity_endpoints_are_counted(sandbox):
    sign_in(sandbox, WORK)

    assert sandbox.count("microsoft.openid") == 1
    assert sandbox.count("microsoft.authorize") == 2  # the page, then the form
    assert sandbox.count("microsoft.token") == 1


def test_a_used_refresh_token_stays_valid_as_with_entra(sandbox):
    """Entra replaces the refresh token on every use without revoking the old one at once."""
    _app, first = sign_in(sandbox, WORK, app=msal_app(sandbox, cache=msal.SerializableTokenCache()))
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
            "scope": "User.Read offline_access"}  # fmt: skip
    renewed = raw_token_request(sandbox, form)
    again = raw_token_request(sandbox, form)

    assert renewed.status_code == again.status_code == 200
    assert renewed.json()["refresh_token"] != first["refresh_token"]


def test_an_expired_client_secret_refuses_every_token_request_with_aadsts7000222(sandbox):
    app, result = sign_in(sandbox, WORK)
    assert "access_token" in result
    control = http_session(sandbox)
    client_id = next(iter(sandbox.options.outlook_clients))
    answer = control.put(
        f"{sandbox.https_url}/_sandbox/api/microsoft/apps/{client_id}",
        json={"secretExpired": True},
        timeout=5,
    )
    assert answer.json() == {"clientId": client_id, "secretExpired": True}

    refreshed = app.acquire_token_silent_with_error(
        SCOPES, account=app.get_accounts()[0], force_refresh=True
    )

    assert refreshed["error"] == "invalid_client"
    assert refreshed["error_codes"] == [7000222]
    assert "are expired" in refreshed["error_description"]
    secret = sandbox.options.outlook_clients[client_id]
    assert secret not in json.dumps(refreshed)
    control.put(
        f"{sandbox.https_url}/_sandbox/api/microsoft/apps/{client_id}",
        json={"secretExpired": False},
        timeout=5,
    )
    again = app.acquire_token_silent_with_error(
        SCOPES, account=app.get_accounts()[0], force_refresh=True
    )
    assert "access_token" in again


def set_tenant(sandbox, tenant: str, **policy) -> dict:
    answer = http_session(sandbox).put(
        f"{sandbox.https_url}/_sandbox/api/microsoft/tenants/{tenant}", json=policy, timeout=5
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_tenant_without_user_consent_shows_need_admin_approval_and_sends_back_aadsts90094(
    sandbox,
):
    set_tenant(sandbox, CONTOSO_TENANT_ID, userConsent=False)
    # A consent given before the policy stays valid, as in Entra: start from none.
    http_session(sandbox).post(
        f"{sandbox.https_url}/_sandbox/api/accounts/{WORK_2}/revoke", timeout=5
    )
    app = msal_app(sandbox, "common")
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI, state="s-1")

    approval = submit_consent(open_consent(flow["auth_uri"]), WORK_2)

    assert approval.status_code == 200
    assert "Need admin approval" in approval.text
    assert "AADSTS90094" in approval.text
    page = ConsentPage(approval.status_code, approval.text, flow["auth_uri"])
    params = callback_params(submit_consent(page, None, "back"))
    assert params["error"] == "access_denied"
    assert params["error_description"].startswith("AADSTS90094:")
    assert params["state"] == "s-1"
    assert "code" not in params


def test_a_personal_account_consents_whatever_a_tenant_decided(sandbox):
    set_tenant(sandbox, CONTOSO_TENANT_ID, userConsent=False)

    _app, result = sign_in(sandbox, PERSONAL)

    assert "access_token" in result


def test_an_app_approved_by_the_administrator_needs_no_member_consent(sandbox):
    client_id = next(iter(sandbox.options.outlook_clients))
    policy = set_tenant(sandbox, "contoso.test", userConsent=False, adminConsent=[client_id])
    assert policy == {
        "tenantId": CONTOSO_TENANT_ID,
        "userConsent": False,
        "adminConsent": [client_id],
    }

    _app, result = sign_in(sandbox, WORK_2)

    assert "access_token" in result


def test_the_operator_control_routes_refuse_what_they_do_not_know(sandbox):
    session = http_session(sandbox)
    base = f"{sandbox.https_url}/_sandbox/api/microsoft"
    assert session.put(f"{base}/apps/nope", json={}, timeout=5).status_code == 404
    assert session.put(f"{base}/tenants/nope.test", json={}, timeout=5).status_code == 404
    wrong = session.put(f"{base}/tenants/contoso.test", json={"userConsent": "no"}, timeout=5)
    assert wrong.status_code == 400
