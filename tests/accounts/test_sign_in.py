from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse
from social_django.models import UserSocialAuth

from accounts.backends import GoogleSignIn
from tests.sandbox.google.helpers import CAMILLE, consent
from tests.sandbox.microsoft.helpers import WORK, open_consent, submit_consent


def test_login_page_is_ours_and_in_french(client, db):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert "registration/login.html" in [t.name for t in response.templates]
    assert "Connexion" in response.text
    assert 'for="id_username"' in response.text


def test_login_with_password_lands_on_my_formations(client, make_user):
    make_user("lea", password="correct horse battery")
    response = client.post(
        reverse("login"), {"username": "lea", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("formations:list")


def test_login_with_a_wrong_password_shows_an_error(client, make_user):
    make_user("lea", password="correct horse battery")
    response = client.post(reverse("login"), {"username": "lea", "password": "wrong"})
    assert response.status_code == 200
    assert 'role="alert"' in response.text


def test_logout_is_a_post_and_signs_out(learner_client):
    response = learner_client.post(reverse("logout"))
    assert response.status_code == 302
    assert learner_client.get(reverse("formations:list")).status_code == 302


def test_password_reset_sends_a_link_that_works(client, make_user):
    make_user("lea", email="lea@example.com")
    response = client.post(reverse("password_reset"), {"email": "lea@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+)", mail.outbox[0].body).group(1)

    form_url = client.get(link)["Location"]
    response = client.post(
        form_url, {"new_password1": "a-brand-new-pass-99", "new_password2": "a-brand-new-pass-99"}
    )
    assert response.status_code == 302
    # Through the sign-in form: the lock on guessing needs the request.
    signed_in = client.post(
        reverse("login"), {"username": "lea", "password": "a-brand-new-pass-99"}
    )
    assert signed_in.status_code == 302
    assert "_auth_user_id" in client.session


def test_social_buttons_hidden_without_credentials(client, db, settings):
    settings.GOOGLE_CLIENT_ID = settings.GOOGLE_CLIENT_SECRET = ""
    settings.OUTLOOK_CLIENT_ID = settings.OUTLOOK_CLIENT_SECRET = ""
    response = client.get(reverse("login"))
    assert "Se connecter avec" not in response.text


def test_social_buttons_shown_per_configured_provider(client, db, settings):
    settings.GOOGLE_CLIENT_ID, settings.GOOGLE_CLIENT_SECRET = "google-id", "google-secret"
    settings.OUTLOOK_CLIENT_ID = settings.OUTLOOK_CLIENT_SECRET = ""
    response = client.get(reverse("login"))
    assert "Se connecter avec Google" in response.text
    assert "Se connecter avec Microsoft" not in response.text
    assert reverse("social:begin", args=["google-oauth2"]) in response.text


def _dump_database() -> str:
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def test_google_sign_in_through_the_provider_keeps_no_token(client, db, sandbox_settings):
    sandbox = sandbox_settings
    start = client.post(reverse("social:begin", args=["google-oauth2"]))
    assert start["Location"].startswith(f"{sandbox.http_url}/o/oauth2/v2/auth?")

    back = urlsplit(consent(sandbox, start["Location"], CAMILLE))
    response = client.get(f"{back.path}?{back.query}")

    assert response.status_code == 302, response.content
    assert response["Location"] == reverse("formations:list")
    social = UserSocialAuth.objects.get(provider="google-oauth2")
    assert social.user.email == CAMILLE
    assert social.extra_data == {}
    issued = sandbox.google.issued_tokens()
    assert issued
    database = _dump_database()
    assert not [token for token in issued if token in database]
    assert client.get(reverse("formations:list")).status_code == 200


def test_google_sign_in_denied_returns_to_the_login_page(client, db, sandbox_settings):
    start = client.post(reverse("social:begin", args=["google-oauth2"]))
    back = urlsplit(consent(sandbox_settings, start["Location"], None, decision="deny"))
    response = client.get(f"{back.path}?{back.query}", follow=True)
    assert response.redirect_chain[0][0].startswith(reverse("login"))
    assert "La connexion avec Google a été annulée." in response.text
    assert not UserSocialAuth.objects.exists()


@pytest.fixture
def google_sign_in(client, db, settings, monkeypatch):
    """The pipeline's linking rules, with the profile Google would return chosen per test."""
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = "google-id"
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = "google-secret"
    token_response = {"access_token": "ya29.x", "expires_in": 3599, "token_type": "Bearer"}
    monkeypatch.setattr(GoogleSignIn, "request_access_token", lambda self, *a, **k: token_response)

    def sign_in(email="lea@example.com", verified=True, sub="1234567890"):
        profile = {"sub": sub, "email": email, "email_verified": verified,
                   "given_name": "Léa", "family_name": "Martin", "name": "Léa Martin"}  # fmt: skip
        monkeypatch.setattr(GoogleSignIn, "user_data", lambda self, *a, **k: profile)
        start = client.post(reverse("social:begin", args=["google-oauth2"]))
        assert start.status_code == 302
        state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
        return client.get(
            reverse("social:complete", args=["google-oauth2"]), {"state": state, "code": "c0de"}
        )

    return sign_in


def test_google_sign_in_links_existing_learner_with_verified_email(google_sign_in, make_user):
    lea = make_user("lea", email="lea@example.com")
    google_sign_in(email="LEA@example.com", verified=True)
    assert UserSocialAuth.objects.get().user == lea


@pytest.mark.parametrize("role", ["is_staff", "is_superuser"])
def test_google_sign_in_never_takes_over_a_staff_account(google_sign_in, make_user, role):
    admin = make_user("admin", email="admin@example.com")
    setattr(admin, role, True)
    admin.save(update_fields=[role])

    response = google_sign_in(email="Admin@example.com", verified=True)

    assert not UserSocialAuth.objects.exists()
    assert get_user_model().objects.count() == 1  # no second account with the address
    assert "_auth_user_id" not in response.wsgi_request.session
    assert response["Location"].startswith(reverse("login"))
    page = response.client.get(response["Location"])
    assert "celle d&#x27;un compte de l&#x27;équipe" in page.text


def test_google_sign_in_with_unverified_email_gets_its_own_account(google_sign_in, make_user):
    lea = make_user("lea", email="lea@example.com")
    google_sign_in(email="lea@example.com", verified=False)
    assert UserSocialAuth.objects.get().user != lea
    assert get_user_model().objects.count() == 2


def test_google_sign_in_with_a_provider_error_says_so_in_french(client, db, sandbox_settings):
    sandbox_settings.add_fault("server_error", endpoint="google.token", times=0)
    start = client.post(reverse("social:begin", args=["google-oauth2"]))
    back = urlsplit(consent(sandbox_settings, start["Location"], CAMILLE))
    response = client.get(f"{back.path}?{back.query}", follow=True)
    assert response.redirect_chain[0][0].startswith(reverse("login"))
    assert "La connexion avec Google n&#x27;a pas abouti." in response.text
    assert not UserSocialAuth.objects.exists()


def test_microsoft_sign_in_uses_the_authoritys_endpoints_and_keeps_no_token(
    client, db, sandbox_settings
):
    sandbox = sandbox_settings
    cache.clear()
    start = client.post(reverse("social:begin", args=["microsoft-graph"]))
    # The authorization endpoint comes from the authority's OpenID configuration (fetched over
    # TLS, trusting OUTLOOK_CA_BUNDLE): on the sandbox it is the plain listener a browser opens.
    assert start["Location"].startswith(f"{sandbox.http_url}/common/oauth2/v2.0/authorize?")

    answer = submit_consent(open_consent(start["Location"]), WORK)
    back = urlsplit(answer.headers["Location"])
    response = client.get(f"{back.path}?{back.query}")

    assert response.status_code == 302, response.content
    social = UserSocialAuth.objects.get(provider="microsoft-graph")
    assert social.user.email == WORK
    assert social.extra_data == {}
    database = _dump_database()
    issued = sandbox.microsoft.issued_tokens()
    assert issued
    assert not [token for token in issued if token in database]
