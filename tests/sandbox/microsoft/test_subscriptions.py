"""Graph change-notification subscriptions in the sandbox, with a real HTTP endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.sandbox.microsoft.helpers import PERSONAL, WORK, Graph, Receiver, outlook_token

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")


@pytest.fixture
def graph(sandbox) -> Graph:
    return Graph(sandbox, outlook_token(sandbox, PERSONAL))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def expiry(minutes: float = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def subscribe(graph: Graph, url: str, **extra) -> requests.Response:
    return graph.post(
        "/subscriptions",
        json={
            "changeType": "created,updated,deleted",
            "notificationUrl": url,
            "resource": "me/events",
            "expirationDateTime": expiry(),
            "clientState": "secret-client-state",
            **extra,
        },
    )


def test_subscription_handshake_then_notifications_with_client_state(sandbox, graph, receiver):
    response = subscribe(graph, receiver.url)

    assert response.status_code == 201, response.text
    subscription = response.json()
    handshake = receiver.received[0]
    token = handshake.query["validationToken"][0]
    assert token.startswith("Validation: ")  # spaces and colons: the endpoint must decode it
    assert handshake.headers["content-type"].startswith("text/plain")
    assert subscription["resource"] == "me/events"
    assert subscription["changeType"] == "created,updated,deleted"
    assert subscription["clientState"] == "secret-client-state"

    created = graph.create_event(subject="Notifiée")
    graph.patch(f"/me/events/{created['id']}", json={"subject": "Notifiée et modifiée"})
    graph.delete(f"/me/events/{created['id']}")

    assert receiver.wait_for(lambda r: b'"deleted"' in r.body)
    changes = [n for n in receiver.notifications() if n["resourceData"]["id"] == created["id"]]
    assert [n["changeType"] for n in changes] == ["created", "updated", "deleted"]
    account = sandbox.store.account(PERSONAL)
    first = changes[0]
    assert first["subscriptionId"] == subscription["id"]
    assert first["clientState"] == "secret-client-state"
    assert first["tenantId"] == account.tenant_id
    assert first["resource"] == f"Users/{account.uid}/Events/{created['id']}"
    assert first["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
    assert first["subscriptionExpirationDateTime"] == subscription["expirationDateTime"]
    graph.delete(f"/subscriptions/{subscription['id']}")


def test_subscription_fails_when_the_endpoint_does_not_echo_the_token(graph):
    silent = Receiver(echo=False)
    try:
        response = subscribe(graph, silent.url)
    finally:
        silent.close()

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Subscription validation request failed.")


def test_subscription_needs_https_except_on_loopback(graph):
    response = subscribe(graph, "http://notifications.example.com/graph")

    assert response.status_code == 400
    assert "https" in response.json()["error"]["message"]


def test_subscription_expiration_is_capped_for_outlook_events(graph, receiver):
    too_far = subscribe(graph, receiver.url, expirationDateTime=expiry(10080 + 5))
    past = subscribe(graph, receiver.url, expirationDateTime=expiry(-5))
    longest = subscribe(graph, receiver.url, expirationDateTime=expiry(10080 - 5))

    assert too_far.status_code == past.status_code == 400
    assert "10080 minutes" in too_far.json()["error"]["message"]
    assert longest.status_code == 201
    graph.delete(f"/subscriptions/{longest.json()['id']}")


def test_subscription_is_renewed_with_patch_and_listed(graph, receiver):
    subscription = subscribe(graph, receiver.url).json()
    later = expiry(3 * 24 * 60)

    renewed = graph.patch(
        f"/subscriptions/{subscription['id']}", json={"expirationDateTime": later}
    )

    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"][:19] == later[:19]
    listed = graph.get("/subscriptions").json()["value"]
    assert subscription["id"] in {s["id"] for s in listed}
    other = Graph(graph.sandbox, outlook_token(graph.sandbox, WORK))
    assert subscription["id"] not in {s["id"] for s in other.get("/subscriptions").json()["value"]}
    assert other.get(f"/subscriptions/{subscription['id']}").status_code == 404
    graph.delete(f"/subscriptions/{subscription['id']}")


def test_deleted_or_expired_subscription_stops_notifying(sandbox, graph, receiver):
    deleted = subscribe(graph, receiver.url).json()
    expired = subscribe(graph, receiver.url).json()
    control = Receiver()
    try:
        kept = subscribe(graph, control.url).json()
        assert graph.delete(f"/subscriptions/{deleted['id']}").status_code == 204
        for subscription in sandbox.microsoft.subscriptions():
            if subscription.id == expired["id"]:
                subscription.expires = datetime.now(UTC) - timedelta(seconds=1)

        created = graph.create_event(subject="Personne ne le saura")

        # the subscription still alive hears of it: by then the others would have too
        assert control.wait_for(lambda r: created["id"].encode() in r.body)
        assert not [n for n in receiver.notifications() if n["resourceData"]["id"] == created["id"]]
        assert graph.get(f"/subscriptions/{expired['id']}").status_code == 404
        assert graph.delete(f"/subscriptions/{deleted['id']}").status_code == 404
        graph.delete(f"/subscriptions/{kept['id']}")
    finally:
        control.close()


def test_only_changes_in_the_subscribed_calendar_are_notified(sandbox, graph, receiver):
    team = next(
        c for c in sandbox.store.account(PERSONAL).calendars.values() if c.name == "Équipe projet"
    )
    subscription = subscribe(graph, receiver.url, resource=f"me/calendars/{team.id}/events").json()

    in_default = graph.create_event(subject="Ailleurs")
    in_team = graph.create_event(f"/me/calendars/{team.id}/events", subject="Ici")

    assert receiver.wait_for(lambda r: in_team["id"].encode() in r.body)
    ids = {n["resourceData"]["id"] for n in receiver.notifications()}
    assert in_default["id"] not in ids
    graph.delete(f"/subscriptions/{subscription['id']}")


def test_a_me_events_subscription_covers_every_calendar_of_the_mailbox(sandbox, graph, receiver):
    team = next(
        c for c in sandbox.store.account(PERSONAL).calendars.values() if c.name == "Équipe projet"
    )
    subscription = subscribe(graph, receiver.url).json()  # resource "me/events"

    in_default = graph.create_event(subject="Principal")
    in_team = graph.create_event(f"/me/calendars/{team.id}/events", subject="Équipe")

    for created in (in_default, in_team):
        assert receiver.wait_for(lambda r, created=created: created["id"].encode() in r.body)
    graph.delete(f"/subscriptions/{subscription['id']}")


def test_lifecycle_notification_is_delivered_through_the_control_route(sandbox, graph, receiver):
    lifecycle = Receiver()
    try:
        subscription = subscribe(graph, receiver.url, lifecycleNotificationUrl=lifecycle.url).json()
        assert lifecycle.received and "validationToken" in lifecycle.received[0].query

        response = requests.post(
            f"{sandbox.http_url}/_sandbox/api/subscriptions/{subscription['id']}"
            "/lifecycle/reauthorizationRequired",
            timeout=5,
        )

        assert response.status_code == 202
        found = lifecycle.wait_for(lambda r: b"reauthorizationRequired" in r.body)
        assert found is not None
        item = found.json()["value"][0]
        assert item["subscriptionId"] == subscription["id"]
        assert item["clientState"] == "secret-client-state"
        assert item["lifecycleEvent"] == "reauthorizationRequired"
        assert graph.post(f"/subscriptions/{subscription['id']}/reauthorize").status_code == 204

        removed = requests.post(
            f"{sandbox.http_url}/_sandbox/api/subscriptions/{subscription['id']}"
            "/lifecycle/subscriptionRemoved",
            timeout=5,
        )
        assert removed.status_code == 202
        assert lifecycle.wait_for(lambda r: b"subscriptionRemoved" in r.body)
        assert graph.get(f"/subscriptions/{subscription['id']}").status_code == 404
    finally:
        lifecycle.close()


def test_lifecycle_control_route_refuses_what_graph_would_never_send(sandbox, graph, receiver):
    plain = subscribe(graph, receiver.url).json()
    base = f"{sandbox.http_url}/_sandbox/api/subscriptions"

    no_url = requests.post(f"{base}/{plain['id']}/lifecycle/missed", timeout=5)
    unknown = requests.post(f"{base}/{plain['id']}/lifecycle/bored", timeout=5)
    missing = requests.post(f"{base}/nope/lifecycle/missed", timeout=5)

    assert no_url.status_code == unknown.status_code == 400
    assert missing.status_code == 404
    graph.delete(f"/subscriptions/{plain['id']}")


def test_changes_do_not_wait_for_a_slow_notification_endpoint(sandbox, graph, monkeypatch):
    slow = Receiver(delay=0.6)
    monkeypatch.setattr(sandbox.options, "notification_timeout", 0.3)
    try:
        subscription = subscribe(graph, slow.url).json()
        started = time.perf_counter()
        created = [graph.create_event(subject=f"Rapide {n}") for n in range(3)]
        elapsed = time.perf_counter() - started

        assert elapsed < 0.6  # the writes never waited for a delivery
        assert slow.wait_for(lambda r: created[0]["id"].encode() in r.body)
        deadline = time.monotonic() + 3
        while not any(d.get("error") for d in sandbox.microsoft.deliveries):
            assert time.monotonic() < deadline, list(sandbox.microsoft.deliveries)
            time.sleep(0.05)
        graph.delete(f"/subscriptions/{subscription['id']}")
    finally:
        slow.close()


def test_subscription_counters(sandbox, graph, receiver):
    subscription = subscribe(graph, receiver.url).json()
    graph.get("/subscriptions")
    graph.patch(f"/subscriptions/{subscription['id']}", json={"expirationDateTime": expiry(90)})
    graph.delete(f"/subscriptions/{subscription['id']}")

    assert [
        sandbox.count(f"graph.subscriptions.{name}")
        for name in ("create", "list", "update", "delete")
    ] == [1, 1, 1, 1]
