"""Limits on guessing: failed sign-ins and wrong API tokens lock the account and the address
for a while; the learner is told, the API answers 429 in its format, staff lift a lock in the
admin, and no password or token is recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

from accounts.services import api_token_create
from accounts.throttling import client_ip

LIMIT = 3
EVENTS = "/api/calendar-integration/integrations"


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def _sign_in(client: Client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def _fail(client: Client, username: str, address: str = "203.0.113.7", times: int = LIMIT):
    for _ in range(times):
        response = _sign_in(client, username, "not-the-password", address)
    return response


def test_an_account_is_locked_after_repeated_failures_and_told_so(make_user):
    make_user("lea")
    client = Client()
    assert _fail(client, "lea", times=LIMIT - 1).status_code == 200  # a wrong password, shown

    locked = _fail(client, "lea", times=1)

    assert locked.status_code == 429
    assert "la connexion est bloquée pendant 15 minutes" in locked.text.replace("&#x27;", "'")
    # The right password is refused too while the lock lasts, from any address.
    again = _sign_in(Client(), "lea", "pw-for-tests-1", address="198.51.100.2")
    assert again.status_code == 429
    assert "_auth_user_id" not in again.wsgi_request.session


def test_an_address_is_locked_after_failures_on_several_accounts(make_user):
    make_user("lea")
    make_user("tom")
    client = Client()
    for number in range(LIMIT):
        _sign_in(client, f"guess{number}", "x", address="203.0.113.9")

    assert _sign_in(client, "lea", "pw-for-tests-1", address="203.0.113.9").status_code == 429
    # Another address is not concerned.
    assert _sign_in(Client(), "tom", "pw-for-tests-1", address="198.51.100.4").status_code == 302


def test_the_lock_ends_after_the_cooloff(make_user):
    make_user("lea")
    _fail(Client(), "lea")
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time
                                 - timedelta(minutes=16))  # fmt: skip

    assert _sign_in(Client(), "lea", "pw-for-tests-1", address="198.51.100.2").status_code == 302


def test_staff_lift_a_lock_in_the_admin(make_user, staff_client):
    make_user("lea")
    _fail(Client(), "lea")
    attempt = AccessAttempt.objects.get(username="lea")
    changelist = staff_client.get(reverse("admin:axes_accessattempt_changelist"))
    assert changelist.status_code == 200
    assert "lea" in changelist.text

    staff_client.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]),
                      {"post": "yes"})  # fmt: skip

    assert not AccessAttempt.objects.exists()
    assert _sign_in(Client(), "lea", "pw-for-tests-1").status_code == 302


def test_no_password_is_recorded(make_user):
    make_user("lea")
    _fail(Client(), "lea")
    recorded = " ".join(
        f"{a.post_data} {a.get_data} {a.username}" for a in AccessAttempt.objects.all()
    )
    assert "not-the-password" not in recorded


def test_wrong_api_tokens_from_an_address_are_refused_with_a_429_in_the_api_format(learner):
    _row, token = api_token_create(user=learner, name="Script")
    client = Client()
    answers = [
        client.get(
            EVENTS, headers={"Authorization": "Bearer wrong-token-123"}, REMOTE_ADDR="203.0.113.7"
        ).status_code
        for _ in range(LIMIT + 2)
    ]

    # The failure that reaches the limit is already answered as a lock (axes' lock at failure).
    assert answers == [401] * (LIMIT - 1) + [429] * 3
    refused = client.get(EVENTS, headers={"Authorization": "Bearer another-guess"},
                         REMOTE_ADDR="203.0.113.7")  # fmt: skip
    assert refused.json()["error"]["code"] == "throttled"
    assert refused["Content-Type"].startswith("application/json")
    assert "wrong-token-123" not in " ".join(
        f"{a.post_data} {a.get_data} {a.username} {a.http_accept}"
        for a in AccessAttempt.objects.all()
    )
    # A wrong token from another address is still only a 401.
    elsewhere = client.get(EVENTS, headers={"Authorization": "Bearer wrong-token-123"},
                           REMOTE_ADDR="198.51.100.4")  # fmt: skip
    assert elsewhere.status_code == 401
    # A valid token is never refused (256 random bits: guessing is not what this stops).
    valid = client.get(EVENTS, headers={"Authorization": f"Bearer {token}"},
                       REMOTE_ADDR="203.0.113.7")  # fmt: skip
    assert valid.status_code == 200


def test_behind_the_proxy_the_address_is_the_one_the_proxy_added(rf, settings):
    settings.BEHIND_TLS_PROXY = True
    request = rf.get("/", HTTP_X_FORWARDED_FOR="10.0.0.1, 203.0.113.7", REMOTE_ADDR="127.0.0.1")
    assert client_ip(request) == "203.0.113.7"
    settings.BEHIND_TLS_PROXY = False
    assert client_ip(request) == "127.0.0.1"  # a client's header is not trusted without it


# --- slowed before the lock ---------------------------------------------------------------


@pytest.fixture
def slowing(settings):
    settings.AXES_FAILURE_LIMIT = 10
    settings.SIGN_IN_SLOW_AFTER = 2


def _age_attempts(seconds: float) -> None:
    """The last failure as if it were `seconds` older."""
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= timedelta(seconds=seconds)
        attempt.save(update_fields=["attempt_time"])


def test_failures_past_the_threshold_are_slowed_then_allowed_after_the_wait(make_user, slowing):
    make_user("lea")
    client = Client()
    assert _fail(client, "lea", times=2).status_code == 200

    slowed = _sign_in(client, "lea", "pw-for-tests-1")  # even the right password, too soon

    assert slowed.status_code == 429
    assert slowed["Retry-After"] == "1"
    assert "attendez 1 seconde avant de réessayer" in slowed.text
    assert "_auth_user_id" not in slowed.wsgi_request.session
    # That try counted: three failures, the next wait is 2 s.
    _age_attempts(1.5)
    assert _sign_in(client, "lea", "pw-for-tests-1")["Retry-After"] == "1"
    _age_attempts(60)
    assert _sign_in(client, "lea", "pw-for-tests-1").status_code == 302


def test_each_try_too_soon_doubles_the_wait_up_to_a_minute_then_the_lock(make_user, slowing):
    make_user("lea")
    client = Client()
    _fail(client, "lea", times=2)

    # Each try made too soon is refused and counted as a failure.
    waits = [int(_sign_in(client, "lea", "not-the-password")["Retry-After"]) for _ in range(7)]

    assert waits == [1, 2, 4, 8, 16, 32, 60]
    locked = _sign_in(client, "lea", "not-the-password")  # the tenth failure: the lock
    assert locked.status_code == 429 and locked["Retry-After"] == "900"
    assert "la connexion est bloquée pendant 15 minutes" in locked.text.replace("&#x27;", "'")


def test_no_wait_below_the_threshold(make_user, slowing):
    make_user("lea")
    client = Client()
    assert _fail(client, "lea", times=1).status_code == 200
    assert _sign_in(client, "lea", "pw-for-tests-1").status_code == 302
