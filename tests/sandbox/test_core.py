from __future__ import annotations

import requests


def test_serves_http_and_https_with_its_own_authority(sandbox):
    assert sandbox.http_url.startswith("http://127.0.0.1:")
    assert sandbox.https_url.startswith("https://127.0.0.1:")
    plain = requests.get(f"{sandbox.http_url}/_sandbox/api/counters", timeout=5)
    secure = requests.get(
        f"{sandbox.https_url}/_sandbox/api/counters", verify=str(sandbox.ca_path), timeout=5
    )
    assert plain.status_code == secure.status_code == 200
