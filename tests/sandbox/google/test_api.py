"""The sandbox's Calendar API as a whole: the discovery document, faults, counters."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from sandbox.google.discovery import discovery
from sandbox.store import BASE32HEX
from tests.sandbox.google.helpers import (
    ALEX,
    calendar_service,
    google_credentials,
    list_all,
    timed_event,
)


def api_get(sandbox, credentials, path: str, **params: Any) -> requests.Response:
    return requests.get(
        f"{sandbox.http_url}/calendar/v3/{path}",
        params=params,
        headers={"Authorization": f"Bearer {credentials.token}"},
        timeout=5,
    )


def first_error(response: requests.Response) -> dict[str, Any]:
    return response.json()["error"]["errors"][0]


def schema_problems(value: Any, schema: str) -> list[str]:
    """Every key of `value` that the discovery document's `schema` does not declare."""
    schemas = discovery()["schemas"]
    problems: list[str] = []

    def walk(value: Any, spec: dict[str, Any], path: str) -> None:
        if "$ref" in spec:
            spec = schemas[spec["$ref"]]
        kind = spec.get("type")
        if kind == "object" or "properties" in spec:
            if not isinstance(value, dict):
                problems.append(f"{path}: {type(value).__name__}, not an object")
                return
            properties = spec.get("properties")
            for key, item in value.items():
                if properties is None:
                    walk(item, spec.get("additionalProperties", {}), f"{path}.{key}")
                elif key not in properties:
                    problems.append(f"{path}.{key}: not in the schema")
                else:
                    walk(item, properties[key], f"{path}.{key}")
        elif kind == "array":
            if not isinstance(value, list):
                problems.append(f"{path}: not an array")
                return
            for index, item in enumerate(value):
                walk(item, spec["items"], f"{path}[{index}]")
        elif kind in {"string", "boolean", "integer"}:
            expected = {"string": str, "boolean": bool, "integer": int}[kind]
            if not isinstance(value, expected) or (kind == "integer" and isinstance(value, bool)):
                problems.append(f"{path}: {value!r} is not a {kind}")

    walk(value, {"$ref": schema}, schema)
    return problems


def test_responses_use_only_fields_of_the_discovery_schemas(sandbox, service):
    recurring = service.events().insert(
        calendarId="primary",
        conferenceDataVersion=1,
        body=timed_event(
            "Schema", "2026-09-07T10:00:00", "2026-09-07T11:00:00",
            recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"],
            extendedProperties={"private": {"k": "v"}, "shared": {"s": "t"}},
            conferenceData={"createRequest": {"requestId": "schema"}},
            attendees=[{"email": "zoe@example.test"}],
            reminders={"useDefault": False, "overrides": [{"method": "popup", "minutes": 5}]},
        ),
    ).execute()  # fmt: skip
    channel = (
        service.events()
        .watch(
            calendarId="primary",
            body={
                "id": secrets.token_hex(8),
                "type": "web_hook",
                "address": "https://127.0.0.1:9/",
            },
        )
        .execute()
    )
    service.channels().stop(
        body={"id": channel["id"], "resourceId": channel["resourceId"]}
    ).execute()
    _, last = list_all(service, calendarId="primary")
    instance = f"{recurring['id']}_20260914T080000Z"
    service.events().delete(calendarId="primary", eventId=instance).execute()
    checked = [
        (recurring, "Event"),
        (service.events().get(calendarId="primary", eventId=instance).execute(), "Event"),
        (service.calendarList().list().execute(), "CalendarList"),
        (service.calendarList().get(calendarId="primary").execute(), "CalendarListEntry"),
        (service.events().instances(calendarId="primary", eventId=recurring["id"]).execute(),
         "Events"),
        (service.events().list(calendarId="primary", syncToken=last["nextSyncToken"]).execute(),
         "Events"),
        (channel, "Channel"),
    ]  # fmt: skip
    for single in (True, False):
        items, page = list_all(service, calendarId="primary", singleEvents=single, showDeleted=True)
        checked.append((dict(page, items=items), "Events"))
    for value, schema in checked:
        assert schema_problems(value, schema) == [], schema


def test_unknown_query_parameter_is_400_invalid_parameter(sandbox, credentials):
    answer = api_get(sandbox, credentials, "calendars/primary/events", sinceWhen="yesterday")
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert first_error(answer)["reason"] == "invalidParameter"
    assert first_error(answer)["location"] == "sinceWhen"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("maxResults", "many"),
        ("maxResults", "0"),
        ("singleEvents", "yes"),
        ("timeMin", "2026-01-01"),
        ("timeMin", "2026-01-01T10:00:00"),  # no offset
        ("orderBy", "summary"),
    ],
)
def test_a_parameter_of_the_wrong_type_is_400(sandbox, credentials, name, value):
    answer = api_get(sandbox, credentials, "calendars/primary/events", **{name: value})
    assert answer.status_code == 400
    assert first_error(answer)["location"] == name


def test_a_missing_required_parameter_is_400_required(sandbox, credentials):
    answer = requests.post(
        f"{sandbox.http_url}/calendar/v3/calendars/primary/transferOwnership",
        headers={"Authorization": f"Bearer {credentials.token}"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert first_error(answer)["reason"] == "required"


def test_unknown_path_is_404_google_style(sandbox, credentials):
    answer = api_get(sandbox, credentials, "calendars/primary/happenings")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == 404
    assert first_error(answer)["reason"] == "notFound"


def test_a_method_the_sandbox_does_not_emulate_is_501(service):
    with pytest.raises(HttpError) as caught:
        service.colors().get().execute()
    assert caught.value.status_code == 501
    assert "does not emulate calendar.colors.get" in caught.value.reason


def test_a_call_without_a_token_is_401_with_google_body(sandbox):
    answer = requests.get(f"{sandbox.http_url}/calendar/v3/users/me/calendarList", timeout=5)
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert first_error(answer) == {
        "message": "Invalid Credentials",
        "domain": "global",
        "reason": "authError",
        "locationType": "header",
        "location": "Authorization",
    }
    assert "WWW-Authenticate" in answer.headers


def test_fields_parameter_gives_a_partial_response(service):
    page = (
        service.events()
        .list(calendarId="primary", maxResults=3, fields="items(id,summary),nextPageToken")
        .execute()
    )
    assert set(page) == {"items", "nextPageToken"}
    assert all(set(item) <= {"id", "summary"} for item in page["items"])


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "reason", "retry_after"),
    [
        ("rate_limit", 429, "rateLimitExceeded", "1"),
        ("rate_limit_403", 403, "rateLimitExceeded", "1"),
        ("quota_exceeded", 403, "quotaExceeded", None),
        ("server_error", 500, "backendError", None),
        ("unavailable", 503, "backendError", "1"),
    ],
)
def test_error_faults_come_as_google_errors(sandbox, service, kind, status, reason, retry_after):
    sandbox.add_fault(kind, endpoint="google.events.list")
    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId="primary").execute()
    error = caught.value
    assert error.status_code == status
    item = json.loads(error.content)["error"]["errors"][0]
    assert item["reason"] == reason
    assert error.resp.get("retry-after") == retry_after
    if reason in {"rateLimitExceeded", "quotaExceeded"}:
        assert item["domain"] == "usageLimits"
    if reason == "rateLimitExceeded":
        # Google adds a google.rpc.ErrorInfo, and the client library then shows only that.
        assert error.error_details == [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {"service": "calendar-json.googleapis.com"},
            }
        ]
    else:
        assert error.error_details[0]["reason"] == reason
    service.events().list(calendarId="primary").execute()  # the fault hit once


def test_slow_answer_times_out_the_client(sandbox, credentials):
    service = calendar_service(sandbox, credentials, timeout=0.5)
    sandbox.add_fault("slow", endpoint="google.events.list", delay=1.5)
    with pytest.raises(TimeoutError):
        service.events().list(calendarId="primary").execute()


@pytest.mark.parametrize("kind", ["truncated", "malformed"])
def test_broken_bodies_do_not_come_back_as_a_dict(sandbox, service, kind):
    event = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event("Plain", "2026-09-01T10:00:00", "2026-09-01T11:00:00"),
        )
        .execute()
    )
    sandbox.add_fault(kind, endpoint="google.events.get")
    # googleapiclient hands back a body that is not JSON as a string, without raising: the
    # caller's first `result["..."]` is what fails.
    result = service.events().get(calendarId="primary", eventId=event["id"]).execute()
    assert isinstance(result, str)
    with pytest.raises(TypeError):
        result["id"]


def test_unauthorized_fault_makes_the_library_refresh_and_retry(sandbox, service):
    sandbox.reset_counters()
    sandbox.add_fault("unauthorized", endpoint="google.events.list")
    assert "items" in service.events().list(calendarId="primary", maxResults=1).execute()
    assert sandbox.count("google.events.list") == 2
    assert sandbox.count("google.token") == 1


def test_lasting_unauthorized_fault_ends_in_401(sandbox, service):
    sandbox.reset_counters()
    sandbox.add_fault("unauthorized", endpoint="google.events.list", times=0)
    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId="primary").execute()
    assert caught.value.status_code == 401
    assert sandbox.count("google.token") == 2  # google-auth-httplib2 tries twice


def test_lost_response_is_resent_by_httplib2_and_a_client_id_makes_it_409(sandbox, service):
    event_id = "".join(secrets.choice(BASE32HEX) for _ in range(16))
    sandbox.add_fault("lost_response", endpoint="google.events.insert")
    body = timed_event("Lost", "2026-09-02T10:00:00", "2026-09-02T11:00:00", id=event_id)

    # httplib2 sends the POST again when the connection drops before an answer.
    with pytest.raises(HttpError) as caught:
        service.events().insert(calendarId="primary", body=body).execute()
    assert caught.value.status_code == 409
    assert sandbox.count("google.events.insert") == 2
    assert service.events().get(calendarId="primary", eventId=event_id).execute()["id"]


def test_faults_can_target_one_account(sandbox, service):
    other = calendar_service(sandbox, google_credentials(sandbox, ALEX))
    sandbox.add_fault("rate_limit", endpoint="google.events.list", account="camille*", times=0)

    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId="primary").execute()
    assert caught.value.status_code == 429
    assert "items" in other.events().list(calendarId="primary").execute()


def test_counters_count_each_endpoint(sandbox, service):
    sandbox.reset_counters()
    service.events().list(calendarId="primary", maxResults=1).execute()
    service.events().list(calendarId="primary", maxResults=1).execute()
    service.calendarList().list().execute()

    assert sandbox.count("google.events.list") == 2
    assert sandbox.count("google.calendarList.list") == 1
    counters = requests.get(f"{sandbox.http_url}/_sandbox/api/counters", timeout=5).json()
    assert counters["google.events.list"] == 2


# --- batch ----------------------------------------------------------------------------------
