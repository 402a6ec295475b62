from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from sandbox.server import HTTPError, Request, Response, Router


def test_serves_http_and_https_with_its_own_authority(sandbox):
    assert sandbox.http_url.startswith("http://127.0.0.1:")
    assert sandbox.https_url.startswith("https://127.0.0.1:")
    plain = requests.get(f"{sandbox.http_url}/_sandbox/api/counters", timeout=5)
    secure = requests.get(
        f"{sandbox.https_url}/_sandbox/api/counters", verify=str(sandbox.ca_path), timeout=5
    )
    assert plain.status_code == secure.status_code == 200


def test_https_is_refused_without_the_sandbox_authority(sandbox):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{sandbox.https_url}/_sandbox/api/counters", timeout=5)


def test_unknown_path_is_404_and_wrong_method_is_405(sandbox):
    assert requests.get(f"{sandbox.http_url}/nowhere", timeout=5).status_code == 404
    assert requests.put(f"{sandbox.http_url}/_sandbox/api/counters", timeout=5).status_code == 405


@pytest.fixture
def probe(sandbox):
    """A route of our own, to see faults apply around a handler that records its calls."""
    calls = []
    router = Router()

    @router.route("POST", r"/_probe/(?P<name>\w+)", "probe.call")
    def call(request: Request) -> Response:
        calls.append(request.params["name"])
        if request.params["name"] == "boom":
            raise HTTPError(409, "duplicate", "already there")
        return Response.json({"name": request.params["name"], "padding": "x" * 200})

    sandbox.routers.insert(0, router)
    yield calls
    sandbox.routers.remove(router)


def _post(sandbox, name, timeout=5.0):
    return requests.post(f"{sandbox.http_url}/_probe/{name}", timeout=timeout)


def test_handler_errors_are_rendered_by_the_routers_formatter(sandbox, probe):
    response = _post(sandbox, "boom")
    assert response.status_code == 409
    assert response.json() == {"error": "duplicate", "message": "already there"}


@pytest.mark.parametrize(
    ("kind", "status"),
    [("rate_limit", 429), ("rate_limit_403", 403), ("quota_exceeded", 403),
     ("server_error", 500), ("unavailable", 503), ("unauthorized", 401)],
)  # fmt: skip
def test_error_faults_answer_without_running_the_handler(sandbox, probe, kind, status):
    sandbox.add_fault(kind, endpoint="probe.*", retry_after=7)
    response = _post(sandbox, "a")
    assert response.status_code == status
    assert probe == []
    if kind in {"rate_limit", "rate_limit_403", "unavailable"}:
        assert response.headers["Retry-After"] == "7"
    assert _post(sandbox, "b").status_code == 200  # times=1: the next call is served
    assert probe == ["b"]


def test_truncated_and_malformed_bodies_keep_the_status(sandbox, probe):
    sandbox.add_fault("truncated", endpoint="probe.call")
    truncated = _post(sandbox, "a")
    assert truncated.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.text)
    sandbox.add_fault("malformed", endpoint="probe.call")
    malformed = _post(sandbox, "b")
    assert malformed.status_code == 200
    assert malformed.text.startswith("<html>")
    assert probe == ["a", "b"]


def test_slow_fault_outlasts_a_client_timeout(sandbox, probe):
    sandbox.add_fault("slow", endpoint="probe.call", delay=1.0)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        _post(sandbox, "a", timeout=0.3)
    assert time.monotonic() - started < 0.9


def test_lost_response_carries_out_the_request_but_never_answers(sandbox, probe):
    sandbox.add_fault("lost_response", endpoint="probe.call")
    with pytest.raises(requests.exceptions.ConnectionError):
        _post(sandbox, "a")
    assert probe == ["a"]


def test_fault_rules_match_endpoint_patterns_and_count_their_hits(sandbox, probe):
    forever = sandbox.add_fault("server_error", endpoint="probe.*", times=0)
    sandbox.add_fault("rate_limit", endpoint="other.*", times=0)
    assert [_post(sandbox, n).status_code for n in "abc"] == [500, 500, 500]
    assert forever.hits == 3
    sandbox.clear_faults()
    assert _post(sandbox, "d").status_code == 200


def test_unknown_fault_kind_is_refused(sandbox):
    with pytest.raises(ValueError, match="unknown fault kind"):
        sandbox.add_fault("meteor")


def test_counters_count_requests_per_endpoint_even_when_faulted(sandbox, probe):
    sandbox.add_fault("server_error", endpoint="probe.call")
    for name in ("a", "b", "c"):
        _post(sandbox, name)
    assert sandbox.count("probe.call") == 3
    counters = requests.get(f"{sandbox.http_url}/_sandbox/api/counters", timeout=5).json()
    assert counters["probe.call"] == 3
    requests.post(f"{sandbox.http_url}/_sandbox/api/counters/reset", timeout=5)
    assert sandbox.count("probe.call") == 0


def test_keep_alive_connections_serve_many_requests(sandbox):
    with requests.Session() as session:
        for _ in range(20):
            assert session.get(f"{sandbox.http_url}/_sandbox/api/counters", timeout=5).ok


def test_a_half_sent_request_does_not_stop_the_server(sandbox):
    with socket.create_connection(("127.0.0.1", int(sandbox.http_url.rsplit(":", 1)[1]))) as raw:
        raw.sendall(b"POST /_sandbox/api/faults HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    assert requests.get(f"{sandbox.http_url}/_sandbox/api/counters", timeout=5).ok
