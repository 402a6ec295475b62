"""Personal API tokens: the "Accès API" settings tab, the token check, the admin."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import api_token_authenticate, api_token_create


def _shown_token(response) -> str:
    match = re.search(r'id="new-token"[^>]*value="(fcal_[^"]+)"', response.text)
    assert match, "no token on the page"
    return match[1]


def test_token_tab_lists_only_the_learners_active_tokens(learner_client, learner, make_user):
    api_token_create(user=learner, name="Script agenda")
    revoked, _ = api_token_create(user=learner, name="Ancien script")
    revoked.revoked_at = timezone.now()
    revoked.save()
    api_token_create(user=make_user(), name="Jeton d'un autre")

    page = learner_client.get(reverse("settings_api"))

    assert page.status_code == 200
    assert "Script agenda" in page.text
    assert "Ancien script" not in page.text
    assert "Jeton d&#x27;un autre" not in page.text
    assert 'aria-current="page">Accès API</a>' in page.text
    assert "jamais" in page.text


def test_creating_a_token_shows_it_once_and_stores_only_its_digest(learner_client, learner):
    response = learner_client.post(reverse("settings_api"), {"name": "Mon script"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "il ne sera plus jamais affiché" in response.text
    token = _shown_token(response)
    assert token.startswith("fcal_") and len(token) > 40

    row = ApiToken.objects.get(user=learner)
    assert row.name == "Mon script"
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith(row.prefix) and len(row.prefix) == 13
    stored = ApiToken.objects.filter(pk=row.pk).values().get()
    assert not any(token in str(value) for value in stored.values())
    assert not any(token in str(value) for value in learner_client.session.values())

    again = learner_client.get(reverse("settings_api"))
    assert token not in again.text
    assert f"{row.prefix}…" in again.text


def test_token_needs_a_name(learner_client):
    response = learner_client.post(reverse("settings_api"), {"name": ""})
    assert response.status_code == 200
    assert 'id="new-token"' not in response.text
    assert response.context["form"].errors["name"]
    assert not ApiToken.objects.exists()


def test_revoking_a_token_refuses_it_from_then_on(learner_client, learner):
    row, token = api_token_create(user=learner, name="Mon script")
    assert api_token_authenticate(token=token) == learner

    response = learner_client.post(reverse("settings_api_revoke", args=[row.pk]), follow=True)

    assert response.redirect_chain == [(reverse("settings_api"), 302)]
    assert "Le jeton « Mon script » est révoqué" in response.text
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert api_token_authenticate(token=token) is None


def test_revoking_another_learners_token_is_404(learner_client, make_user):
    row, _ = api_token_create(user=make_user(), name="Le sien")
    response = learner_client.post(reverse("settings_api_revoke", args=[row.pk]))
    assert response.status_code == 404
    row.refresh_from_db()
    assert row.revoked_at is None


def test_revoking_needs_a_post(learner_client, learner):
    row, _ = api_token_create(user=learner, name="Mon script")
    assert learner_client.get(reverse("settings_api_revoke", args=[row.pk])).status_code == 405


def test_token_check_records_use_and_refuses_unknown_tokens_and_inactive_users(learner, make_user):
    row, token = api_token_create(user=learner, name="Mon script")
    assert api_token_authenticate(token=token) == learner
    row.refresh_from_db()
    assert timezone.now() - row.last_used_at < timedelta(seconds=5)

    assert api_token_authenticate(token=token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert api_token_authenticate(token="") is None
    assert api_token_authenticate(token=row.digest) is None  # the digest is not a key

    inactive = make_user(is_active=False)
    _, inactive_token = api_token_create(user=inactive, name="Inactif")
    assert api_token_authenticate(token=inactive_token) is None


def test_tokens_are_random_and_digests_unique(learner):
    tokens = {api_token_create(user=learner, name=f"t{i}")[1] for i in range(20)}
    assert len(tokens) == 20
    assert ApiToken.objects.values("digest").distinct().count() == 20


# --- admin ------------------------------------------------------------------------------


@pytest.fixture
def learner_token(learner):
    return api_token_create(user=learner, name="Script agenda")


def test_staff_find_tokens_by_learner_and_never_see_a_digest(staff_client, learner_token):
    row, token = learner_token
    changelist = staff_client.get(reverse("admin:accounts_apitoken_changelist"), {"q": "learner"})
    assert [t.pk for t in changelist.context["cl"].result_list] == [row.pk]

    change = staff_client.get(reverse("admin:accounts_apitoken_change", args=[row.pk]))
    assert change.status_code == 200
    assert row.prefix in change.text
    for page in (changelist, change):
        assert row.digest not in page.text
        assert token not in page.text
    assert staff_client.get(reverse("admin:accounts_apitoken_add")).status_code == 403


def test_staff_revoke_tokens_from_the_admin(staff_client, learner_token):
    row, token = learner_token
    response = staff_client.post(
        reverse("admin:accounts_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [row.pk]},
        follow=True,
    )
    assert "1 jeton révoqué." in response.text
    assert api_token_authenticate(token=token) is None
