"""The webhooks Google and Microsoft call: the checks a notification passes before it asks for
a sync, Graph's validation handshake, and answers that never show a secret."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from calendars import push, webhooks
from calendars.models import PushChannel
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("no_waiting")

GOOGLE_HOOK = reverse("calendars:webhook_google")
OUTLOOK_HOOK = reverse("calendars:webhook_outlook")


def _channel(integration, *, secret="s3cret-of-the-channel", channel_id="chan-1", resource="res-1"):
    return PushChannel.objects.create(
        integration=integration,
        channel_id=channel_id,
        resource_id=resource,
        secret_digest=push.digest(secret),
        expires_at=timezone.now() + timedelta(days=1),
    )


def _google_headers(channel_id="chan-1", token="s3cret-of-the-channel", state="exists",
                    resource="res-1"):  # fmt: skip
    return {
        "HTTP_X_GOOG_CHANNEL_ID": channel_id,
        "HTTP_X_GOOG_CHANNEL_TOKEN": token,
        "HTTP_X_GOOG_RESOURCE_ID": resource,
        "HTTP_X_GOOG_RESOURCE_STATE": state,
        "HTTP_X_GOOG_MESSAGE_NUMBER": "2",
    }


@pytest.mark.parametrize(
    "headers",
    [
        _google_headers(token="not-the-secret"),
        _google_headers(channel_id="someone-elses-channel"),
        _google_headers(resource="another-resource"),
        _google_headers(state="sync"),  # announces the channel: nothing changed yet
        {},
    ],
    ids=["wrong token", "unknown channel", "other resource", "sync message", "no headers"],
)
def test_google_webhook_ignores_what_is_not_a_change_of_ours(
    client, sandbox_settings, learner, headers, django_capture_on_commit_callbacks
):
    integration = connect(sandbox_settings, learner, "google")
    _channel(integration)
    with django_capture_on_commit_callbacks(execute=True) as sent:
        response = client.post(GOOGLE_HOOK, **headers)
    assert response.status_code == 200  # so that Google stops sending it
    assert not sent
    assert not integration.sync_runs.exists()


def test_google_webhook_syncs_on_a_change(
    client, sandbox_settings, learner, django_capture_on_commit_callbacks
):
    integration = connect(sandbox_settings, learner, "google")
    _channel(integration)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(GOOGLE_HOOK, **_google_headers())
    assert response.status_code == 200
    run = integration.sync_runs.get()
    assert (run.trigger, run.direction, run.error) == ("push", "both", "")


def test_a_burst_of_notifications_makes_one_sync(
    client, sandbox_settings, learner, django_capture_on_commit_callbacks
):
    integration = connect(sandbox_settings, learner, "google")
    _channel(integration)
    with django_capture_on_commit_callbacks() as sent:
        for number in range(20):
            headers = _google_headers() | {"HTTP_X_GOOG_MESSAGE_NUMBER": str(number)}
            assert client.post(GOOGLE_HOOK, **headers).status_code == 200
    assert len(sent) == 1  # one task, sent a little later for the whole burst
    sent[0]()
    assert integration.sync_runs.count() == 1


def test_outlook_validation_handshake_echoes_the_token_as_text(client, db):
    token = "Validation: Testing client application reachability <script>alert(1)</script>"
    response = client.post(f"{OUTLOOK_HOOK}?validationToken={requests.utils.quote(token)}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content.decode() == token
    assert client.post(f"{OUTLOOK_HOOK}?validationToken={'x' * 5000}").status_code == 400


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b'{"value": 3}'], ids=["not json", "no value", "not a list"]
)
def test_outlook_webhook_refuses_what_is_not_a_notification(client, db, body):
    response = client.post(OUTLOOK_HOOK, body, content_type="application/json")
    assert response.status_code == 400


def _graph_notification(channel_id="chan-1", client_state="s3cret-of-the-channel", **extra):
    return json.dumps(
        {"value": [{"subscriptionId": channel_id, "clientState": client_state,
                    "changeType": "updated", "resource": "Users/x/Events/y", **extra}]}
    )  # fmt: skip


def test_outlook_webhook_checks_the_client_state(
    client, sandbox_settings, learner, django_capture_on_commit_callbacks
):
    integration = connect(sandbox_settings, learner, "outlook")
    _channel(integration)
    with django_capture_on_commit_callbacks(execute=True) as sent:
        for body in (_graph_notification(client_state="forged"),
                     _graph_notification(channel_id="unknown"),
                     _graph_notification(client_state=None)):  # fmt: skip
            response = client.post(OUTLOOK_HOOK, body, content_type="application/json")
            assert response.status_code == 202
    assert not sent
    with django_capture_on_commit_callbacks(execute=True):
        client.post(OUTLOOK_HOOK, _graph_notification(), content_type="application/json")
    assert integration.sync_runs.get().trigger == "push"


def test_webhook_answers_never_show_secrets(client, sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "outlook")
    channel = _channel(integration)
    response = client.post(OUTLOOK_HOOK, _graph_notification(), content_type="application/json")
    assert channel.secret_digest not in response.content.decode()
    assert b"s3cret" not in response.content


# --- what only a flood sends ---------------------------------------------------------------


@pytest.mark.parametrize("hook", [GOOGLE_HOOK, OUTLOOK_HOOK], ids=["google", "outlook"])
def test_a_body_over_the_limit_is_refused_before_it_is_read(client, db, hook, monkeypatch):
    def unread(*args, **kwargs):
        raise AssertionError("the body was parsed")

    monkeypatch.setattr(json, "loads", unread)
    body = b'{"value": [' + b" " * webhooks.WEBHOOK_BODY_MAX + b"]}"

    response = client.post(hook, body, content_type="application/json", **_google_headers())

    assert response.status_code == 413


def test_a_notification_within_the_limit_is_read(
    client, sandbox_settings, learner, django_capture_on_commit_callbacks
):
    integration = connect(sandbox_settings, learner, "outlook")
    _channel(integration)
    body = _graph_notification(padding=" " * (webhooks.WEBHOOK_BODY_MAX - 1000))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(OUTLOOK_HOOK, body, content_type="application/json")
    assert response.status_code == 202
    assert integration.sync_runs.get().trigger == "push"


def test_a_body_nested_too_deeply_is_a_bad_request_not_an_error(client, db):
    depth = 100_000
    body = '{"value": [' + "[" * depth + "]" * depth + "]}"

    response = client.post(OUTLOOK_HOOK, body, content_type="application/json")

    assert response.status_code == 400


def test_many_notification_items_are_looked_up_in_one_query(
    client, sandbox_settings, learner, django_capture_on_commit_callbacks
):
    integration = connect(sandbox_settings, learner, "outlook")
    _channel(integration)
    items = [
        {"subscriptionId": f"unknown-{number}", "clientState": "forged"} for number in range(900)
    ]
    items += [{"subscriptionId": "chan-1", "clientState": "forged"}] * 50
    items.append({"subscriptionId": "chan-1", "clientState": "s3cret-of-the-channel"})
    body = json.dumps({"value": items})

    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        CaptureQueriesContext(connection) as queries,
    ):
        response = client.post(OUTLOOK_HOOK, body, content_type="application/json")

    assert response.status_code == 202
    lookups = [q for q in queries.captured_queries if "calendars_pushchannel" in q["sql"]]
    assert len(lookups) == 1
    for callback in callbacks:  # the one proven item still asks for its sync
        callback()
    assert integration.sync_runs.get().trigger == "push"


def test_a_subscription_removed_twice_in_one_post_is_removed_once(
    client, sandbox_settings, learner, django_capture_on_commit_callbacks
):
    integration = connect(sandbox_settings, learner, "outlook")
    _channel(integration)
    item = {
        "subscriptionId": "chan-1",
        "clientState": "s3cret-of-the-channel",
        "lifecycleEvent": "subscriptionRemoved",
    }

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            OUTLOOK_HOOK, json.dumps({"value": [item, item]}), content_type="application/json"
        )

    assert response.status_code == 202
    assert not PushChannel.objects.filter(channel_id="chan-1").exists()
