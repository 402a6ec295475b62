"""Fault rules: the failures a test, a benchmark or a person at the pages asks for."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from sandbox.server import HTTPError
from sandbox.store import Account

FAULT_KINDS = {
    "rate_limit": "429 Too Many Requests with Retry-After",
    "rate_limit_403": "403 rateLimitExceeded (Google's other rate-limit answer)",
    "quota_exceeded": "403 quotaExceeded (Google: daily limit, not fixed by retrying soon)",
    "server_error": "500 Internal Server Error",
    "unavailable": "503 Service Unavailable with Retry-After",
    "slow": "answers after `delay` seconds (longer than a client's timeout)",
    "truncated": "the right status, but the body cut in half",
    "malformed": "the right status, but a body that is not JSON",
    "unauthorized": "401: the access token is refused as expired",
    "lost_response": "the request is carried out, then the connection drops without an answer",
    "empty": "a listing answers 200 with no entries (its paging and sync token kept)",
}


@dataclass
class Fault:
    kind: str
    endpoint: str = "*"  # fnmatch pattern on endpoint names, e.g. "google.events.*"
    account: str = "*"  # fnmatch pattern on the account's e-mail
    times: int = 1  # how many matching requests it hits; 0 = until cleared
    after: int = 0  # how many matching requests pass first, untouched
    retry_after: int | None = 1
    delay: float = 5.0
    hits: int = 0
    passed: int = 0

    def matches(self, endpoint: str, account: Account | None) -> bool:
        if not fnmatch.fnmatchcase(endpoint, self.endpoint):
            return False
        if self.account != "*" and (
            account is None or not fnmatch.fnmatch(account.email, self.account)
        ):
            return False
        return self.times == 0 or self.hits < self.times

    def as_dict(self) -> dict[str, Any]:
        fields = ("kind", "endpoint", "account", "times", "after", "retry_after", "delay", "hits")
        return {name: getattr(self, name) for name in fields}


def fault_error(fault: Fault) -> HTTPError:
    retry = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    return {
        "rate_limit": HTTPError(429, "rateLimitExceeded", "Rate Limit Exceeded", headers=retry),
        "rate_limit_403": HTTPError(403, "rateLimitExceeded", "Rate Limit Exceeded", headers=retry),
        "quota_exceeded": HTTPError(403, "quotaExceeded", "Calendar usage limits exceeded."),
        "server_error": HTTPError(500, "backendError", "Backend Error"),
        "unavailable": HTTPError(503, "backendError", "Service Unavailable", headers=retry),
        "unauthorized": HTTPError(401, "authError", "Invalid Credentials"),
    }[fault.kind]
