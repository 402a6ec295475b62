"""Batch requests to the Calendar API: many calls in one multipart request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from tests.sandbox.google.helpers import (
    new_batch,
    timed_event,
)


def test_batch_of_inserts_through_batch_http_request(sandbox, service):
    answers: dict[str, Any] = {}
    batch = new_batch(sandbox, lambda request_id, response, error: answers.update(
        {request_id: error or response}
    ))  # fmt: skip
    for hour in (9, 10, 11):
        batch.add(
            service.events().insert(
                calendarId="primary",
                body=timed_event(
                    f"Lot {hour}", f"2026-10-05T{hour:02d}:00:00", f"2026-10-05T{hour:02d}:30:00"
                ),
            )
        )
    batch.execute()

    assert [answers[key]["summary"] for key in sorted(answers)] == ["Lot 9", "Lot 10", "Lot 11"]
    assert sandbox.count("google.batch") == 1
    assert sandbox.count("google.events.insert") == 3
    for answer in answers.values():
        assert service.events().get(calendarId="primary", eventId=answer["id"]).execute()


def test_batch_can_mix_reads_and_deletes(sandbox, service):
    event = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event("Mix", "2026-10-06T09:00:00", "2026-10-06T10:00:00"),
        )
        .execute()
    )
    answers: list[Any] = []
    batch = new_batch(sandbox, lambda _id, response, error: answers.append(error or response))
    batch.add(service.events().get(calendarId="primary", eventId=event["id"]))
    batch.add(service.events().delete(calendarId="primary", eventId=event["id"]))
    batch.add(service.events().get(calendarId="primary", eventId="missing00000"))
    batch.execute()

    assert answers[0]["id"] == event["id"]
    assert answers[1] == ""  # 204: a method without a response schema gets ""
    assert isinstance(answers[2], HttpError) and answers[2].status_code == 404


def test_batch_of_51_calls_is_rejected(sandbox, service):
    batch = new_batch(sandbox)
    for _ in range(51):
        batch.add(service.events().list(calendarId="primary", maxResults=1))
    with pytest.raises(HttpError) as caught:
        batch.execute()
    assert caught.value.status_code == 400
    assert sandbox.count("google.events.list") == 0


def test_rate_limit_inside_a_batch_answers_that_part_only(sandbox, service):
    sandbox.add_fault("rate_limit", endpoint="google.events.insert", retry_after=7)
    answers: list[Any] = []
    batch = new_batch(sandbox, lambda _id, response, error: answers.append(error or response))
    for hour in (13, 14):
        batch.add(
            service.events().insert(
                calendarId="primary",
                body=timed_event("Quota", f"2026-10-07T{hour}:00:00", f"2026-10-07T{hour}:30:00"),
            )
        )
    batch.execute()

    assert isinstance(answers[0], HttpError)
    assert answers[0].status_code == 429
    assert answers[0].resp["retry-after"] == "7"
    assert json.loads(answers[0].content)["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    assert answers[1]["summary"] == "Quota"
