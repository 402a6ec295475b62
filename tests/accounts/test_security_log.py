"""The security log: an entry for each event it names, written as a JSON line too, shown to the
learner it concerns (Paramètres › Sécurité) and to staff (admin, read-only), pruned after
SECURITY_LOG_RETENTION_DAYS, and never holding a secret."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import SecurityEvent
from accounts.security import security_event_record, security_log_prune
from accounts.services import api_token_create
from accounts.tasks import prune_security_log
from calendars.errors import ProviderError, ReconnectRequired
from calendars.models import CalendarIntegration, OAuthState
from calendars.services.credentials import integration_access_token
from formations.feeds import feed_for
from tests.calendars.connect_helpers import (
    GOOGLE_ACCOUNT,
    OUTLOOK_ACCOUNT,
    connect,
    consent_redirect,
)

Kind = SecurityEvent.Kind
PASSWORD = "correct horse battery staple"
ACCOUNT = {"google": GOOGLE_ACCOUNT, "outlook": OUTLOOK_ACCOUNT}
TOKEN_ENDPOINT = {"google": "google.token", "outlook": "microsoft.token"}
EVENTS = "/api/calendar-integration/integrations"
SERVICE = {"google": "Google Agenda", "outlook": "Outlook"}


def _entries(**filters):
    return list(SecurityEvent.objects.filter(**filters).order_by("pk"))


def _only(kind, **filters) -> SecurityEvent:
    (entry,) = _entries(kind=kind, **filters)
    return entry


def _start(client, provider):
    response = client.post(reverse("calendars:connect", args=[provider]))
    assert response.status_code == 302
    return response["Location"]


def _back(client, location, **extra):
    back = urlsplit(location)
    return client.get(f"{back.path}?{back.query}", **extra)


def _revoke(sandbox, integration):
    account = sandbox.store.account(integration.account_email)
    sandbox.provider_for(account).revoke_account(account)


# --- calendar connections ---------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_connecting_then_reconnecting_is_logged_with_account_and_address(
    learner_client, learner, sandbox_settings, provider
):
    for _ in range(2):
        location = _start(learner_client, provider)
        back = consent_redirect(sandbox_settings, provider, location, ACCOUNT[provider])
        _back(learner_client, back, REMOTE_ADDR="203.0.113.7")

    connected, reconnected = _entries(
        kind__in=[Kind.INTEGRATION_CONNECTED, Kind.INTEGRATION_RECONNECTED]
    )
    assert connected.kind == Kind.INTEGRATION_CONNECTED
    assert reconnected.kind == Kind.INTEGRATION_RECONNECTED
    for entry in (connected, reconnected):
        assert (entry.user, entry.actor, entry.service, entry.account, entry.address) == (
            learner, None, SERVICE[provider], ACCOUNT[provider], "203.0.113.7",
        )  # fmt: skip


def test_disconnecting_is_logged(learner_client, learner, sandbox_settings):
    connect(sandbox_settings, learner, "google")
    learner_client.post(
        reverse("settings_calendar_disconnect", args=["google"]), REMOTE_ADDR="198.51.100.4"
    )
    entry = _only(Kind.INTEGRATION_DISCONNECTED)
    assert (entry.user, entry.account, entry.address, entry.detail) == (
        learner, GOOGLE_ACCOUNT, "198.51.100.4", "revoked",
    )  # fmt: skip


# --- refused OAuth callbacks, each with its reason ------------------------------------------


def test_a_callback_with_a_state_never_issued_is_logged_as_refused(
    learner_client, learner, sandbox_settings
):
    location = _start(learner_client, "google")
    back = consent_redirect(sandbox_settings, "google", location, GOOGLE_ACCOUNT)
    _back(learner_client, back.replace("state=", "state=x"), REMOTE_ADDR="192.0.2.1")
    entry = _only(Kind.OAUTH_REFUSED)
    assert (entry.user, entry.detail, entry.address, entry.service) == (
        learner, "invalid_state", "192.0.2.1", "Google Agenda",
    )  # fmt: skip


def test_a_replayed_callback_is_logged_as_refused(learner_client, learner, sandbox_settings):
    location = _start(learner_client, "outlook")
    back = consent_redirect(sandbox_settings, "outlook", location, OUTLOOK_ACCOUNT)
    _back(learner_client, back)
    _back(learner_client, back)
    assert _only(Kind.OAUTH_REFUSED).detail == "invalid_state"
    assert len(_entries(kind=Kind.INTEGRATION_CONNECTED)) == 1


def test_an_expired_flow_is_logged_as_refused(learner_client, sandbox_settings):
    location = _start(learner_client, "google")
    back = consent_redirect(sandbox_settings, "google", location, GOOGLE_ACCOUNT)
    OAuthState.objects.update(created_at=timezone.now() - timedelta(minutes=11))
    _back(learner_client, back)
    assert _only(Kind.OAUTH_REFUSED).detail == "expired_state"


def test_another_learners_flow_is_logged_as_refused_for_who_opened_it(
    learner_client, make_user, sandbox_settings
):
    location = _start(learner_client, "google")
    back = consent_redirect(sandbox_settings, "google", location, GOOGLE_ACCOUNT)
    other = make_user()
    client = Client()
    client.force_login(other)
    _back(client, back)
    entry = _only(Kind.OAUTH_REFUSED)
    assert (entry.user, entry.detail) == (other, "other_learner")


def test_consent_denied_is_logged_as_refused(learner_client, sandbox_settings):
    location = _start(learner_client, "google")
    _back(learner_client, consent_redirect(sandbox_settings, "google", location, None, False))
    assert _only(Kind.OAUTH_REFUSED).detail == "denied"
    assert not CalendarIntegration.objects.exists()


# --- grants lost, refreshes failed ------------------------------------------------------------


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_lost_grant_is_logged_once_with_its_cause(sandbox_settings, learner, provider):
    integration = connect(sandbox_settings, learner, provider)
    _revoke(sandbox_settings, integration)
    for _ in range(2):  # the second call is refused here, without the provider: no new entry
        with pytest.raises(ReconnectRequired):
            integration_access_token(integration=integration, force=True)

    entry = _only(Kind.GRANT_LOST)
    assert (entry.user, entry.service, entry.account, entry.address) == (
        learner, SERVICE[provider], ACCOUNT[provider], None,
    )  # fmt: skip
    assert entry.detail == integration.last_error_code


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_failed_refresh_is_logged_with_its_code(sandbox_settings, learner, provider):
    integration = connect(sandbox_settings, learner, provider)
    sandbox_settings.add_fault("server_error", endpoint=TOKEN_ENDPOINT[provider], times=0)
    with pytest.raises(ProviderError):
        integration_access_token(integration=integration, force=True)
    entry = _only(Kind.REFRESH_FAILED)
    assert (entry.user, entry.service) == (learner, SERVICE[provider])
    assert entry.detail == integration.last_error_code


# --- key rotation, the feed ---------------------------------------------------------------


def test_a_key_rotation_is_logged_with_its_counts(sandbox_settings, learner):
    connect(sandbox_settings, learner, "google")
    call_command("rotate_calendar_key", stdout=open("/dev/null", "w"))  # noqa: SIM115
    entry = _only(Kind.KEY_ROTATED)
    assert (entry.user, entry.detail) == (None, "1 re-encrypted, 0 unreadable")


def test_regenerating_the_feed_address_is_logged(learner_client, learner):
    old = feed_for(user=learner).token
    learner_client.post(reverse("formations:feed_regenerate"), REMOTE_ADDR="192.0.2.9")
    entry = _only(Kind.FEED_REGENERATED)
    assert (entry.user, entry.address, entry.actor) == (learner, "192.0.2.9", None)
    assert old not in entry.detail


# --- API tokens -----------------------------------------------------------------------------


def test_api_tokens_created_used_from_new_addresses_and_revoked_are_logged(
    learner_client, learner, client
):
    learner_client.post(reverse("settings_api"), {"name": "Script"}, REMOTE_ADDR="192.0.2.20")
    created = _only(Kind.API_TOKEN_CREATED)
    assert (created.user, created.address) == (learner, "192.0.2.20")
    assert created.detail.startswith("Script (fcal_")

    _row, token = api_token_create(user=learner, name="Other")
    headers = {"Authorization": f"Bearer {token}"}
    events = EVENTS
    for address in ["192.0.2.30", "192.0.2.30", "192.0.2.31", "192.0.2.30"]:
        assert client.get(events, headers=headers, REMOTE_ADDR=address).status_code == 200
    first_uses = _entries(kind=Kind.API_TOKEN_NEW_ADDRESS)
    assert [(e.user, e.address) for e in first_uses] == [
        (learner, "192.0.2.30"),
        (learner, "192.0.2.31"),
    ]

    row = learner.api_tokens.get(name="Other")
    learner_client.post(reverse("settings_api_revoke", args=[row.pk]), REMOTE_ADDR="192.0.2.20")
    revoked = _only(Kind.API_TOKEN_REVOKED)
    assert (revoked.user, revoked.address, revoked.detail) == (
        learner, "192.0.2.20", f"Other ({row.prefix}…)",
    )  # fmt: skip


def test_a_valid_tokens_known_address_costs_no_write(learner, client):
    _row, token = api_token_create(user=learner, name="Script")
    headers = {"Authorization": f"Bearer {token}"}
    client.get(EVENTS, headers=headers)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(EVENTS, headers=headers).status_code == 200
    assert not [q["sql"] for q in queries if not q["sql"].lstrip().startswith("SELECT")]
    assert len(_entries(kind=Kind.API_TOKEN_NEW_ADDRESS)) == 1


def test_a_wrong_api_token_is_logged_as_a_failed_sign_in_of_no_account(client, db):
    client.get(
        EVENTS, headers={"Authorization": "Bearer fcal_wrong"},
        REMOTE_ADDR="192.0.2.40",
    )  # fmt: skip
    entry = _only(Kind.SIGN_IN_FAILED)
    assert (entry.user, entry.detail, entry.address) == (None, "api_token", "192.0.2.40")


# --- signing in ---------------------------------------------------------------------------


def _sign_in(client, username, password, address="192.0.2.50"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_signing_in_and_failing_to_are_logged(client, make_user):
    learner = make_user("camille", password=PASSWORD)
    _sign_in(client, "camille", "wrong")
    _sign_in(client, "nobody-here", "wrong")
    _sign_in(client, "camille", PASSWORD)

    failed, unknown = _entries(kind=Kind.SIGN_IN_FAILED)
    assert (failed.user, failed.detail, failed.address) == (learner, "password", "192.0.2.50")
    # A name that is no account's is not kept: it may be a password typed in the wrong box.
    assert (unknown.user, unknown.detail, unknown.account) == (None, "unknown_account", "")
    signed_in = _only(Kind.SIGNED_IN)
    assert (signed_in.user, signed_in.detail, signed_in.address) == (
        learner, "password", "192.0.2.50",
    )  # fmt: skip


def test_a_locked_sign_in_is_logged(client, make_user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    learner = make_user("camille", password=PASSWORD)
    for _ in range(3):
        _sign_in(client, "camille", "wrong")
    locked = _entries(kind=Kind.SIGN_IN_LOCKED)
    assert locked and all(e.user == learner for e in locked)
    assert locked[0].address == "192.0.2.50"


# --- staff ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action", ["sync_now", "refresh_tokens", "mark_needs_reconnect", "disconnect"]
)
def test_staff_actions_on_integrations_are_logged_for_the_learner(
    staff_client, staff, learner, sandbox_settings, action
):
    integration = connect(sandbox_settings, learner, "google")
    data = {"action": action, "_selected_action": [integration.pk], "post": "yes"}
    staff_client.post(
        reverse("admin:calendars_calendarintegration_changelist"), data, REMOTE_ADDR="10.0.0.5"
    )
    entry = _only(Kind.STAFF_ACTION)
    assert (entry.user, entry.actor, entry.detail, entry.address, entry.account) == (
        learner, staff, action, "10.0.0.5", GOOGLE_ACCOUNT,
    )  # fmt: skip
    # What the action did is logged too, as done by staff.
    follow = {"mark_needs_reconnect": Kind.GRANT_LOST, "disconnect": Kind.INTEGRATION_DISCONNECTED}
    if action in follow:
        assert _only(follow[action]).actor == staff


def test_staff_changing_an_integrations_settings_is_logged(
    staff_client, staff, learner, sandbox_settings
):
    integration = connect(sandbox_settings, learner, "google")
    url = reverse("admin:calendars_calendarintegration_change", args=[integration.pk])
    response = staff_client.post(
        url,
        {"import_enabled": "on", "sync_enabled": "on",
         "channels-TOTAL_FORMS": "0", "channels-INITIAL_FORMS": "0",
         "exports-TOTAL_FORMS": "0", "exports-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert response.status_code == 302
    assert _only(Kind.STAFF_ACTION).detail == "settings_changed"


def test_staff_revoking_a_token_is_logged_as_done_by_staff(staff_client, staff, learner):
    row, _token = api_token_create(user=learner, name="Script")
    data = {"action": "revoke", "_selected_action": [row.pk]}
    staff_client.post(reverse("admin:accounts_apitoken_changelist"), data)
    assert _only(Kind.API_TOKEN_REVOKED).actor == staff


# --- the log's JSON lines, the learner's page, the admin, pruning -----------------------------


def test_each_entry_is_also_one_json_line(caplog, learner):
    caplog.set_level(logging.INFO, logger="security")
    security_event_record(
        kind=Kind.GRANT_LOST, user=learner, service="Outlook", account="a@example.com",
        detail="invalid_grant", address="192.0.2.60",
    )  # fmt: skip
    (line,) = [r.getMessage() for r in caplog.records if r.name == "security"]
    assert json.loads(line) == {
        "event": "grant_lost", "user": learner.pk, "actor": None, "address": "192.0.2.60",
        "service": "Outlook", "account": "a@example.com", "detail": "invalid_grant",
    }  # fmt: skip


def test_the_learner_sees_their_own_entries_only_escaped_and_in_their_language(
    learner_client, learner, make_user, staff
):
    other = make_user()
    security_event_record(
        kind=Kind.INTEGRATION_CONNECTED, user=learner, service="Google Agenda",
        account="<script>alert(1)</script>@example.com", address="192.0.2.70",
    )  # fmt: skip
    security_event_record(
        kind=Kind.STAFF_ACTION, user=learner, actor=staff, service="Outlook",
        detail="sync_now", address="10.0.0.5",
    )  # fmt: skip
    security_event_record(kind=Kind.GRANT_LOST, user=learner, detail="missing_scope")
    security_event_record(kind=Kind.SIGNED_IN, user=other, address="192.0.2.99")

    page = learner_client.get(reverse("settings_security"))
    assert page.status_code == 200
    text = page.text
    assert "Agenda connecté" in text and "192.0.2.70" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@example.com" in text
    assert "<script>alert" not in text
    # Done by staff: said so, not their address.
    assert "Action de l&#x27;équipe d&#x27;assistance" in text
    assert "synchronisation demandée" in text and "10.0.0.5" not in text
    assert "une autorisation a été retirée" in text and "automatique" in text
    assert "192.0.2.99" not in text  # another learner's

    learner_client.post(reverse("set_language"), {"language": "en", "next": "/"})
    english = learner_client.get(reverse("settings_security")).text
    assert "Calendar connected" in english and "Google Calendar" in english


def test_the_learner_page_is_reached_from_the_settings_tabs(learner_client):
    page = learner_client.get(reverse("settings"))
    assert f'href="{reverse("settings_security")}"' in page.text


def test_the_learner_page_needs_a_sign_in(client):
    response = client.get(reverse("settings_security"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_staff_see_every_entry_read_only_with_filters_and_search(staff_client, learner):
    security_event_record(kind=Kind.SIGN_IN_FAILED, user=learner, address="192.0.2.80")
    security_event_record(kind=Kind.KEY_ROTATED, detail="3 re-encrypted, 0 unreadable")
    entry = SecurityEvent.objects.get(kind=Kind.SIGN_IN_FAILED)
    changelist = reverse("admin:accounts_securityevent_changelist")

    everything = staff_client.get(changelist)
    assert everything.status_code == 200
    assert "192.0.2.80" in everything.text and "3 re-encrypted" in everything.text
    by_kind = staff_client.get(changelist, {"kind__exact": "key_rotated"}).text
    assert "3 re-encrypted" in by_kind and "192.0.2.80" not in by_kind
    searched = staff_client.get(changelist, {"q": learner.username}).text
    assert "192.0.2.80" in searched and "3 re-encrypted" not in searched
    by_address = staff_client.get(changelist, {"q": "192.0.2.80"}).text
    assert "192.0.2.80" in by_address and "3 re-encrypted" not in by_address

    change = reverse("admin:accounts_securityevent_change", args=[entry.pk])
    assert staff_client.get(change).status_code == 200
    staff_client.post(change, {"detail": "edited"})
    assert SecurityEvent.objects.get(pk=entry.pk).detail == ""
    delete = reverse("admin:accounts_securityevent_delete", args=[entry.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    assert staff_client.get(reverse("admin:accounts_securityevent_add")).status_code == 403


def test_learners_cannot_open_the_log_in_the_admin(learner_client):
    response = learner_client.get(reverse("admin:accounts_securityevent_changelist"))
    assert response.status_code == 302


def test_entries_older_than_the_retention_are_pruned(settings, learner):
    settings.SECURITY_LOG_RETENTION_DAYS = 30
    now = timezone.now()
    for days in (31, 29, 1):
        entry = security_event_record(kind=Kind.SIGNED_IN, user=learner)
        SecurityEvent.objects.filter(pk=entry.pk).update(occurred_at=now - timedelta(days=days))

    assert security_log_prune(now=now) == 1
    assert sorted((now - e.occurred_at).days for e in _entries()) == [1, 29]
    settings.SECURITY_LOG_RETENTION_DAYS = 2
    assert prune_security_log.delay().get() == 1
    assert len(_entries()) == 1


def test_the_prune_runs_daily(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["prune-security-log"]
    assert schedule == {"task": "accounts.tasks.prune_security_log", "schedule": 24 * 3600.0}


# --- no secret in any entry ---------------------------------------------------------------


def test_no_token_the_sandbox_issued_nor_any_of_ours_is_in_the_log(
    learner_client, learner, staff_client, sandbox_settings, caplog, client
):
    caplog.set_level(logging.DEBUG)
    secrets = set()
    for provider in ("google", "outlook"):
        location = _start(learner_client, provider)
        back = consent_redirect(sandbox_settings, provider, location, ACCOUNT[provider])
        query = dict(part.split("=", 1) for part in urlsplit(back).query.split("&"))
        secrets |= {query["code"], query["state"]}
        _back(learner_client, back)
        _back(learner_client, back)  # replayed: refused, logged
        integration = CalendarIntegration.objects.get(user=learner, provider=provider)
        integration_access_token(integration=integration, force=True)
    # Google's only: msal answers a refresh sent again soon after a 5xx from its own cache.
    sandbox_settings.add_fault("server_error", endpoint="google.token", times=0)
    with pytest.raises(ProviderError):
        integration_access_token(
            integration=CalendarIntegration.objects.get(provider="google"), force=True
        )
    sandbox_settings.clear_faults()
    created = learner_client.post(reverse("settings_api"), {"name": "Script"})
    api_token = created.context["token"]
    secrets.add(api_token)
    client.get(EVENTS, headers={"Authorization": f"Bearer {api_token}"})
    client.get(EVENTS, headers={"Authorization": f"Bearer {api_token}x"})
    feed = feed_for(user=learner).token
    secrets.add(feed)
    learner_client.post(reverse("formations:feed_regenerate"))
    secrets.add(feed_for(user=learner).token)
    _sign_in(Client(), learner.username, "a wrong password 123")
    secrets.add("a wrong password 123")
    for integration in CalendarIntegration.objects.filter(user=learner):
        _revoke(sandbox_settings, integration)
        with pytest.raises(ReconnectRequired):
            integration_access_token(integration=integration, force=True)
    call_command("rotate_calendar_key", stdout=open("/dev/null", "w"))  # noqa: SIM115
    learner_client.post(reverse("settings_calendar_disconnect", args=["google"]))

    issued = sandbox_settings.google.issued_tokens() | sandbox_settings.microsoft.issued_tokens()
    assert len(issued) >= 4
    secrets |= issued
    kinds = set(SecurityEvent.objects.values_list("kind", flat=True))
    assert {Kind.INTEGRATION_CONNECTED, Kind.OAUTH_REFUSED, Kind.REFRESH_FAILED,
            Kind.GRANT_LOST, Kind.API_TOKEN_CREATED, Kind.API_TOKEN_NEW_ADDRESS,
            Kind.SIGN_IN_FAILED, Kind.FEED_REGENERATED, Kind.KEY_ROTATED,
            Kind.INTEGRATION_DISCONNECTED} <= kinds  # fmt: skip
    stored = json.dumps(list(SecurityEvent.objects.values()), default=str)
    security_lines = "\n".join(r.getMessage() for r in caplog.records if r.name == "security")
    page = learner_client.get(reverse("settings_security")).text
    admin = staff_client.get(reverse("admin:accounts_securityevent_changelist")).text
    for where in (stored, security_lines, page, admin):
        assert not [secret for secret in secrets if secret in where]
