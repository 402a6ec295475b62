"""A battery of abuses, each tried many times through the real pages, API and webhooks against
the sandbox: guessing passwords and API tokens, forged and oversized webhooks, oversized and
nested API bodies, tampered OAuth callbacks, another learner's data, a provider's text built to
run a script. Each attempt must be refused; at the end, every answer, the security log and the
logs are searched for every secret handed out (the sandbox's tokens, OAuth codes and states, our
API tokens, the feed's address, the passwords tried).

`pytest tests/security -s` prints the figures: tried, refused, leaked, by family.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import Counter
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import SecurityEvent
from accounts.services import api_token_create
from calendars import push, webhooks
from calendars.models import CalendarEvent, CalendarIntegration, OAuthState, PushChannel
from calendars.sync.importing import calendar_import
from formations.feeds import feed_for
from sandbox.store import Event, new_google_id
from tests.calendars.connect_helpers import GOOGLE_ACCOUNT, OUTLOOK_ACCOUNT, consent_redirect

PASSWORD = "pw-for-tests-1"  # make_user's
GOOGLE_HOOK = reverse("calendars:webhook_google")
OUTLOOK_HOOK = reverse("calendars:webhook_outlook")
API = "/api/calendar-integration"
SCRIPT = '<script>alert("x")</script>'


class Battery:
    """Counts attempts and refusals by family, and keeps every answer for the leak search."""

    def __init__(self) -> None:
        self.tried: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.answers: dict[str, list[str]] = {}
        self.let_through: list[str] = []

    def attempt(self, family: str, response, refused: bool) -> None:
        self.tried[family] += 1
        self.refused[family] += bool(refused)
        if not refused:
            self.let_through.append(f"{family}: {response.request['PATH_INFO']} answered "
                                    f"{response.status_code}")  # fmt: skip
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        text = headers + "\n" + response.content.decode(errors="replace")
        self.answers.setdefault(family, []).append(text)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _flow(client: Client, sandbox, provider: str) -> tuple[str, dict[str, str]]:
    """Starts a connection and consents: the callback's path and query, not yet opened."""
    start = client.post(reverse("calendars:connect", args=[provider]))["Location"]
    email = GOOGLE_ACCOUNT if provider == "google" else OUTLOOK_ACCOUNT
    back = urlsplit(consent_redirect(sandbox, provider, start, email))
    return back.path, dict(parse_qsl(back.query))


@pytest.fixture
def victim_events(sandbox_settings):
    """Events written into the victim's Google calendar, taken out again afterwards."""
    added: list[tuple] = []
    yield added
    with sandbox_settings.store.lock:
        for remote, event_id in added:
            remote.events.pop(event_id, None)


def test_every_abuse_is_refused_and_nothing_leaks(
    sandbox_settings, make_user, make_formation, settings, caplog, victim_events, monkeypatch
):  # fmt: skip
    caplog.set_level(logging.DEBUG)
    settings.AXES_FAILURE_LIMIT = 10
    battery = Battery()
    handed_out: set[str] = set()
    victim = make_user("victim")
    attacker = make_user("attacker")
    victim_client, attacker_client = Client(), Client()
    victim_client.force_login(victim)
    attacker_client.force_login(attacker)

    # The victim's real connections, through the pages.
    for provider in ("google", "outlook"):
        path, query = _flow(victim_client, sandbox_settings, provider)
        handed_out |= {query["code"], query["state"]}
        victim_client.get(path, query)
    google = CalendarIntegration.objects.get(user=victim, provider="google")
    _victim_token_row, victim_token = api_token_create(user=victim, name="Script")
    handed_out.add(victim_token)
    handed_out.add(feed_for(user=victim).token)

    # 1. Guessing a password: one account, then many accounts, from one address each.
    for number in range(30):
        guess = f"guess-{number}"
        handed_out.add(guess)
        client = Client(REMOTE_ADDR="198.51.100.1")
        response = client.post(reverse("login"), {"username": "victim", "password": guess})
        battery.attempt("sign-in guessing", response, not _signed_in(client))
    # Once locked, even the right password is refused for the account.
    client = Client(REMOTE_ADDR="198.51.100.2")
    response = client.post(reverse("login"), {"username": "victim", "password": PASSWORD})
    battery.attempt("sign-in guessing", response, not _signed_in(client))
    for number in range(30):
        user = make_user(f"spray{number}")
        client = Client(REMOTE_ADDR="198.51.100.3")
        response = client.post(reverse("login"), {"username": user.username, "password": "x"})
        battery.attempt("sign-in guessing", response, not _signed_in(client))

    # 2. Guessing an API token.
    for _ in range(40):
        guess = "fcal_" + secrets.token_urlsafe(32)
        response = Client(REMOTE_ADDR="198.51.100.4").get(
            f"{API}/integrations", headers={"Authorization": f"Bearer {guess}"}
        )
        battery.attempt("API token guessing", response, response.status_code in (401, 429))

    # 3. Forged notifications: they must not start a sync, whatever they name.
    channel_secret = "the-channel-secret-" + secrets.token_urlsafe(8)
    handed_out.add(channel_secret)
    PushChannel.objects.create(
        integration=google, channel_id="chan-victim", resource_id="res-victim",
        secret_digest=push.digest(channel_secret), expires_at=timezone.now() + timedelta(days=1),
    )  # fmt: skip
    syncs_asked: list[int] = []
    monkeypatch.setattr(webhooks, "dispatch_push_sync", syncs_asked.append)
    for number in range(100):
        headers = {
            "HTTP_X_GOOG_CHANNEL_ID": "chan-victim" if number % 2 else f"chan-{number}",
            "HTTP_X_GOOG_CHANNEL_TOKEN": secrets.token_urlsafe(12),
            "HTTP_X_GOOG_RESOURCE_ID": "res-victim",
            "HTTP_X_GOOG_RESOURCE_STATE": "exists",
        }
        response = Client().post(GOOGLE_HOOK, **headers)
        battery.attempt("forged webhooks", response, response.status_code < 500 and not syncs_asked)
    for number in range(100):
        item = {"subscriptionId": "chan-victim" if number % 2 else f"sub-{number}",
                "clientState": secrets.token_urlsafe(12), "changeType": "updated"}  # fmt: skip
        response = Client().post(
            OUTLOOK_HOOK, json.dumps({"value": [item] * 50}), content_type="application/json"
        )
        battery.attempt("forged webhooks", response, response.status_code < 500 and not syncs_asked)

    # 4. Bodies built to cost: too big, too deep, not what is expected.
    big = b'{"value": [' + b" " * webhooks.WEBHOOK_BODY_MAX + b"]}"
    deep = '{"value": [' + "[" * 100_000 + "]" * 100_000 + "]}"
    for hook in (GOOGLE_HOOK, OUTLOOK_HOOK):
        response = Client().post(hook, big, content_type="application/json")
        battery.attempt("oversized or nested bodies", response, response.status_code == 413)
    for body, expected in ((deep, 400), (b"not json", 400), (b'{"value": 3}', 400)):
        response = Client().post(OUTLOOK_HOOK, body, content_type="application/json")
        battery.attempt("oversized or nested bodies", response, response.status_code == expected)
    bearer = {"Authorization": f"Bearer {victim_token}"}
    url = f"{API}/integrations/google/settings"
    too_big = b'{"import": true, "x": "' + b"a" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    for body, expected in ((too_big + b'"}', 413), ('{"a":' * 50_000 + "1" + "}" * 50_000, 400)):
        response = Client().put(url, body, content_type="application/json", headers=bearer)
        battery.attempt("oversized or nested bodies", response, response.status_code == expected)

    # 5. OAuth callbacks tampered with: nothing connected, nothing changed.
    before = CalendarIntegration.objects.get(pk=google.pk).credentials
    path, query = _flow(victim_client, sandbox_settings, "google")
    handed_out |= {query["code"], query["state"]}
    victim_client.get(path, query)
    tampered = [
        (victim_client, {**query, "state": "forged"}),
        (victim_client, query),  # replayed
        (
            victim_client,
            {"state": query["state"], "error": "access_denied", "error_description": SCRIPT},
        ),
    ]
    _path2, query2 = _flow(victim_client, sandbox_settings, "google")
    handed_out |= {query2["code"], query2["state"]}
    tampered.append((attacker_client, query2))  # the victim's flow, finished by another
    _path3, query3 = _flow(attacker_client, sandbox_settings, "outlook")
    handed_out |= {query3["code"], query3["state"]}
    OAuthState.objects.filter(user=attacker).update(created_at=timezone.now() - timedelta(hours=1))
    tampered.append((attacker_client, query3))  # expired
    for _ in range(5):
        tampered.append((attacker_client, {"state": secrets.token_urlsafe(16), "code": "x"}))
    for client, params in tampered:
        provider = "outlook" if params is query3 else "google"
        response = client.get(reverse("calendars:callback", args=[provider]), params)
        unchanged = not CalendarIntegration.objects.filter(user=attacker).exists()
        battery.attempt("OAuth callbacks", response, unchanged and response.status_code == 302)
    assert CalendarIntegration.objects.get(pk=google.pk).credentials != before  # the real one

    # 6. Another learner's data, by every door.
    calendar = google.calendars.get(is_primary=True)
    remote_account = sandbox_settings.store.account(GOOGLE_ACCOUNT)
    remote = remote_account.calendars[calendar.external_id]
    start = timezone.now() + timedelta(days=2)
    for title in (SCRIPT, f'"><img src=x onerror=alert(1)>{SCRIPT}'):
        event_id = new_google_id()
        event = Event(id=event_id, calendar_id=remote.id, ical_uid=f"{event_id}@t", title=title,
                      location=SCRIPT, start=start, end=start + timedelta(hours=1))  # fmt: skip
        sandbox_settings.store.save(remote_account, remote, event)
        victim_events.append((remote, event_id))
    calendar_import(calendar=calendar)
    stored = CalendarEvent.objects.filter(
        calendar=calendar, title__in=[SCRIPT, f'"><img src=x onerror=alert(1)>{SCRIPT}']
    )
    assert stored.count() == 2
    formation = make_formation(learners=(victim,), title=SCRIPT)
    doors = [
        ("get", reverse("calendars:event", args=[f"event-{stored[0].pk}"]), None),
        ("get", reverse("calendars:event", args=[f"formation-{formation.pk}"]), None),
        ("get", formation.get_absolute_url(), None),
        ("get", reverse("formations:ics", args=[formation.pk]), None),
        ("post", reverse("calendars:export_formation", args=["google", formation.pk]), None),
        ("get", f"{API}/formations/{formation.pk}", None),
        ("put", f"{API}/integrations/google/settings", {"import": False}),
        ("delete", f"{API}/integrations/google", None),
        ("get", reverse("admin:calendars_calendarintegration_changelist"), None),
        ("get", reverse("admin:accounts_securityevent_changelist"), None),
    ]
    for method, path, body in doors:
        call = getattr(attacker_client, method)
        response = (
            call(path, json.dumps(body), content_type="application/json") if body else (call(path))
        )
        battery.attempt("another learner's data", response, response.status_code in (302, 404))
    day = f"{start:%Y-%m-%d}"
    api_range = {"start": day, "end": f"{start + timedelta(days=1):%Y-%m-%d}"}
    for client, path, params in [
        (attacker_client, reverse("calendars:calendar"), {"view": "week", "date": day}),
        (attacker_client, f"{API}/events", api_range),
        (attacker_client, f"{API}/integrations", None),
    ]:
        response = client.get(path, params)
        battery.attempt(
            "another learner's data", response, "<script>" not in response.content.decode()
            and GOOGLE_ACCOUNT not in response.content.decode()
        )  # fmt: skip
    assert CalendarIntegration.objects.get(pk=google.pk).import_enabled

    # 7. A provider's text built to run a script, on every page that shows it.
    pages = (
        [
            (reverse("calendars:calendar"), {"view": view, "date": day})
            for view in ("month", "week", "day", "agenda")
        ]
        + [(reverse("calendars:event", args=[f"event-{event.pk}"]), None) for event in stored]
        + [(formation.get_absolute_url(), None), (reverse("settings_security"), None)]
    )
    for path, params in pages:
        response = victim_client.get(path, params)
        text = response.content.decode()
        battery.attempt(
            "provider text as script", response,
            response.status_code == 200
            and "<script>alert" not in text
            and "<img src=x" not in text,
        )  # fmt: skip

    # 8. Every secret, searched everywhere.
    handed_out |= (
        sandbox_settings.google.issued_tokens() | sandbox_settings.microsoft.issued_tokens()
    )
    handed_out.discard("")

    def found(text: str) -> list[str]:
        return sorted(secret for secret in handed_out if secret in text)

    leaked = {family: found("\n".join(texts)) for family, texts in battery.answers.items()}
    leaked["security log"] = found(json.dumps(list(SecurityEvent.objects.values()), default=str))
    # The application's logs at every level; the sandbox's own access log stands for the
    # provider's, which sees its codes and states by design.
    leaked["logs"] = found(
        "\n".join(
            f"{r.name}: {r.getMessage()}"
            for r in caplog.records
            if not r.name.startswith("sandbox")
        )
    )

    width = max(len(name) for name in leaked)
    lines = [f"{'family':<{width}}  tried  refused  leaked"]
    for family, tried in battery.tried.items():
        lines.append(
            f"{family:<{width}}  {tried:>5}  {battery.refused[family]:>7}  {len(leaked[family]):>6}"
        )
    for place in ("security log", "logs"):
        lines.append(f"{place:<{width}}  {'':>5}  {'':>7}  {len(leaked[place]):>6}")
    total_leaks = sum(len(secrets_found) for secrets_found in leaked.values())
    lines.append(
        f"{'all':<{width}}  {sum(battery.tried.values()):>5}  "
        f"{sum(battery.refused.values()):>7}  {total_leaks:>6}"
    )
    lines.append(f"secrets searched for: {len(handed_out)}")
    print("\n" + "\n".join(lines))
    assert battery.refused == battery.tried, battery.let_through
    assert not total_leaks, {place: found for place, found in leaked.items() if found}
