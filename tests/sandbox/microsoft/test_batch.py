"""Graph's JSON batching: up to twenty requests in one, dependencies, faults inside a batch."""

from __future__ import annotations

import pytest

from tests.sandbox.microsoft.helpers import WORK, Graph, error_code, event_body, outlook_token

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")


@pytest.fixture
def graph(sandbox) -> Graph:
    return Graph(sandbox, outlook_token(sandbox, WORK))


def test_batch_creates_several_events(sandbox, graph):
    requests_ = [
        {
            "id": str(n),
            "method": "POST",
            "url": "/me/events",
            "headers": {"Content-Type": "application/json"},
            "body": event_body(f"Session {n}"),
        }
        for n in range(1, 4)
    ] + [{"id": "4", "method": "GET", "url": "me"}]

    response = graph.post("/$batch", json={"requests": requests_})

    assert response.status_code == 200
    answers = {a["id"]: a for a in response.json()["responses"]}
    assert [answers[str(n)]["status"] for n in range(1, 4)] == [201, 201, 201]
    assert answers["2"]["body"]["subject"] == "Session 2"
    assert answers["4"]["body"]["mail"] == WORK
    assert sandbox.count("graph.batch") == 1
    assert sandbox.count("graph.events.create") == 3


def test_batch_of_more_than_twenty_requests_is_refused(graph):
    requests_ = [{"id": str(n), "method": "GET", "url": "/me"} for n in range(21)]

    response = graph.post("/$batch", json={"requests": requests_})

    assert response.status_code == 400
    assert error_code(response) == "BadRequest"


def test_batch_request_needs_content_type_with_a_body_and_runs_dependencies(graph):
    requests_ = [
        {"id": "a", "method": "POST", "url": "/me/events", "body": event_body()},
        {"id": "b", "method": "GET", "url": "/me", "dependsOn": ["a"]},
    ]

    answers = {
        a["id"]: a for a in graph.post("/$batch", json={"requests": requests_}).json()["responses"]
    }

    assert answers["a"]["status"] == 400
    assert answers["b"]["status"] == 424


def test_rate_limit_inside_a_batch_shows_in_that_response(sandbox, graph):
    sandbox.add_fault("rate_limit", endpoint="graph.events.create", retry_after=7)
    requests_ = [
        {
            "id": str(n),
            "method": "POST",
            "url": "/me/events",
            "headers": {"Content-Type": "application/json"},
            "body": event_body(f"Batch {n}"),
        }
        for n in range(3)
    ]

    response = graph.post("/$batch", json={"requests": requests_})

    answers = [a for a in response.json()["responses"]]
    assert response.status_code == 200
    assert [a["status"] for a in answers] == [429, 201, 201]
    assert answers[0]["headers"]["Retry-After"] == "7"
    assert answers[0]["body"]["error"]["code"] == "TooManyRequests"
