"""The control API: JSON routes for tests, benchmarks and the inspection page."""

from __future__ import annotations

import requests


def test_control_api_adds_lists_and_clears_faults(sandbox):
    base = f"{sandbox.http_url}/_sandbox/api/faults"
    added = requests.post(base, json={"kind": "unavailable", "endpoint": "graph.*",
                                      "times": 2, "after": 1, "retry_after": 3},
                          timeout=5)  # fmt: skip
    assert added.status_code == 201
    assert requests.get(base, timeout=5).json() == [
        {"kind": "unavailable", "endpoint": "graph.*", "account": "*", "times": 2, "after": 1,
         "retry_after": 3, "delay": 5.0, "hits": 0}
    ]  # fmt: skip
    assert requests.post(base, json={"kind": "meteor"}, timeout=5).status_code == 400
    assert requests.post(base, json=["not", "a", "rule"], timeout=5).status_code == 400
    assert requests.delete(base, timeout=5).status_code == 204
    assert sandbox.faults == []


def test_control_api_lists_accounts_and_refuses_unknown_ones(sandbox):
    accounts = requests.get(f"{sandbox.http_url}/_sandbox/api/accounts", timeout=5).json()
    assert {a["email"] for a in accounts} == set(sandbox.store.accounts)
    unknown = requests.post(
        f"{sandbox.http_url}/_sandbox/api/accounts/nobody@x.test/invalidate-sync", timeout=5
    )
    assert unknown.status_code == 404
