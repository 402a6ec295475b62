"""Outlook's limit of four concurrent requests per mailbox."""

from __future__ import annotations

import threading

import pytest
import requests

from tests.sandbox.microsoft.helpers import PERSONAL, WORK_2, Graph, error_code, outlook_token

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")


def test_more_than_four_concurrent_requests_for_a_mailbox_get_429(sandbox):
    graph = Graph(sandbox, outlook_token(sandbox, PERSONAL))
    other = Graph(sandbox, outlook_token(sandbox, WORK_2))
    sandbox.add_fault("slow", endpoint="graph.me", account=PERSONAL, times=0, delay=0.6)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def call() -> None:
        response = Graph(sandbox, graph.session.headers["Authorization"][7:]).get("/me")
        with lock:
            results.append(response)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    assert other.get("/me").status_code == 200  # another mailbox is not held up
    for thread in threads:
        thread.join()

    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 200, 200, 429, 429]
    throttled = next(r for r in results if r.status_code == 429)
    assert error_code(throttled) == "ApplicationThrottled"
    assert throttled.headers["Retry-After"] == "1"
    sandbox.clear_faults()
    assert graph.get("/me").status_code == 200  # every slot was given back


def test_requests_inside_batches_count_against_the_mailbox(sandbox):
    """Graph runs up to 4 requests of a batch at once: two batches in flight for one mailbox
    are up to 8 requests, and the excess is refused inside the batches, as Graph does."""
    token = outlook_token(sandbox, PERSONAL)
    sandbox.add_fault("slow", endpoint="graph.me", account=PERSONAL, times=0, delay=0.4)
    batch = {"requests": [{"id": str(n), "method": "GET", "url": "/me"} for n in range(4)]}
    answers: list[dict] = []
    lock = threading.Lock()

    def send() -> None:
        response = Graph(sandbox, token).post("/$batch", json=batch)
        with lock:
            answers.extend(response.json()["responses"])

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sandbox.clear_faults()

    statuses = sorted(answer["status"] for answer in answers)
    assert statuses == [200] * 4 + [429] * 4
    refused = next(answer for answer in answers if answer["status"] == 429)
    assert refused["body"]["error"]["code"] == "ApplicationThrottled"
    assert "MailboxConcurrency" in refused["body"]["error"]["message"]
    assert refused["headers"]["Retry-After"] == "1"
    assert sandbox.count("graph.throttled.mailbox_concurrency") == 4
