"""`POST /api/calendar-integration/caldav/connect`: a CalDAV account connected through the API,
checked with the server at once; the OAuth endpoints are not its way in, nor its way theirs."""

from __future__ import annotations

import json

from calendars.models import CalendarIntegration

API = "/api/calendar-integration"


def _connect(client, bearer, dav, password=None):
    body = {"url": dav.url, "username": dav.username, "password": password or dav.password}
    return client.post(
        f"{API}/caldav/connect", json.dumps(body), content_type="application/json",
        headers=bearer,
    )  # fmt: skip


def test_a_script_connects_a_caldav_account(client, bearer, learner, dav, own_calendar):
    response = _connect(client, bearer, dav)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["type"], body["status"], body["accountEmail"]) == (
        "caldav", "connected", dav.username,
    )  # fmt: skip
    assert dav.password not in response.content.decode()
    listed = client.get(f"{API}/integrations", headers=bearer)
    assert dav.password not in listed.content.decode()
    assert CalendarIntegration.objects.get(user=learner).provider == "caldav"


def test_a_wrong_password_is_a_400_and_stores_nothing(client, bearer, dav):
    response = _connect(client, bearer, dav, password="wrong-one")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "wrong_password"
    assert "wrong-one" not in response.content.decode()
    assert not CalendarIntegration.objects.exists()


def test_each_provider_connects_its_own_way(client, bearer, db):
    assert client.get(f"{API}/caldav/auth-url", headers=bearer).status_code == 404
    body = {"url": "https://caldav.example.com", "username": "a", "password": "b"}
    google = client.post(
        f"{API}/google/connect", json.dumps(body), content_type="application/json",
        headers=bearer,
    )  # fmt: skip
    assert google.status_code == 404
    assert google.json()["error"]["code"] == "unknown_provider"


def test_a_connection_body_is_checked(client, bearer, db):
    for body in ({"url": "ftp://x", "username": "a", "password": "b"},
                 {"url": "https://x", "username": "", "password": "b"},
                 {"url": "https://x", "username": "a", "password": "b", "extra": 1}):  # fmt: skip
        response = client.post(
            f"{API}/caldav/connect", json.dumps(body), content_type="application/json",
            headers=bearer,
        )  # fmt: skip
        assert response.status_code == 400, body
