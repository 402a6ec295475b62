"""JSON batching: https://learn.microsoft.com/graph/json-batching.

Up to 20 requests, run in an order that honours `dependsOn`; each goes through
`Sandbox.handle`, so counters, faults and the mailbox concurrency limit apply to it.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sandbox.microsoft.formats import now_iso
from sandbox.microsoft.identity import AccessToken
from sandbox.server import HTTPError, Request, Response
from sandbox.store import Account

if TYPE_CHECKING:
    from sandbox.core import Sandbox


MAX_BATCH_REQUESTS = 20  # https://learn.microsoft.com/graph/json-batching
# Graph runs up to 4 requests of one batch against Outlook at once (throttling-limits page,
# "Outlook service batching").
PARALLEL_INNER_REQUESTS = 4


class Batch:
    def __init__(self, sandbox: Sandbox, local: threading.local) -> None:
        self.sandbox = sandbox
        self._local = local

    def handle(self, request: Request, account: Account, token: AccessToken) -> Response:
        return self._batch(request)

    def _batch(self, request: Request) -> Response:
        """https://learn.microsoft.com/graph/json-batching: each inner request goes through
        `Sandbox.handle`, so counters, faults and the mailbox concurrency limit apply to it."""
        try:
            payload = request.json()
        except ValueError:
            payload = None
        items = payload.get("requests") if isinstance(payload, dict) else None
        invalid = HTTPError(400, "BadRequest", "Invalid batch payload format.")
        if not isinstance(items, list) or not items:
            raise invalid
        if len(items) > MAX_BATCH_REQUESTS:
            raise HTTPError(
                400,
                "BadRequest",
                f"The number of requests in the batch "
                f"({len(items)}) exceeds the limit of {MAX_BATCH_REQUESTS}.",
            )
        ids: list[str] = []
        for item in items:
            if (
                not isinstance(item, dict)
                or not all(
                    isinstance(item.get(k), str) and item[k] for k in ("id", "method", "url")
                )
                or not isinstance(item.get("headers") or {}, dict)
            ):
                raise invalid
            ids.append(item["id"].lower())
        if len(set(ids)) != len(ids):
            raise HTTPError(400, "BadRequest", "Batch request ids must be unique.")
        by_id = {item["id"].lower(): item for item in items}
        for item in items:
            depends = item.get("dependsOn") or []
            if not isinstance(depends, list) or any(str(d).lower() not in by_id for d in depends):
                raise HTTPError(400, "BadRequest", "dependsOn refers to an unknown request id.")
        order = _topological(items)
        if order is None:
            raise HTTPError(400, "BadRequest", "dependsOn has a cycle.")
        statuses: dict[str, int] = {}
        answers: dict[str, dict[str, Any]] = {}

        def run(item: dict[str, Any]) -> dict[str, Any]:
            depends = [str(d).lower() for d in item.get("dependsOn") or []]
            if any(statuses.get(d, 0) >= 400 for d in depends):
                return _inner_error(item["id"], 424, "FailedDependency", "Failed dependency.")
            return self._inner(request, item)

        # As Graph does against Outlook, the requests whose dependencies are done run up to 4
        # at a time, each taking one of the mailbox's 4 concurrent requests: several batches
        # in flight for one mailbox get 429 MailboxConcurrency on inner requests.
        pending = list(order)
        with ThreadPoolExecutor(max_workers=PARALLEL_INNER_REQUESTS) as pool:
            while pending:
                wave = [
                    item
                    for item in pending
                    if all(str(d).lower() in answers for d in item.get("dependsOn") or [])
                ]
                for item, answer in zip(wave, pool.map(run, wave), strict=True):
                    statuses[item["id"].lower()] = answer["status"]
                    answers[item["id"].lower()] = answer
                pending = [item for item in pending if item["id"].lower() not in answers]
        self._local.request = request
        responses = [answers[item["id"].lower()] for item in items]
        return Response.json({"responses": responses})

    def _inner(self, outer: Request, item: dict[str, Any]) -> dict[str, Any]:
        url = item["url"]
        if url.lower().startswith(("http://", "https://")) or "$batch" in url.lower():
            return _inner_error(item["id"], 400, "BadRequest", "Invalid request URL.")
        headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
        body = b""
        if "body" in item and item["body"] is not None:
            if not any(k.lower() == "content-type" for k in headers):
                return _inner_error(
                    item["id"],
                    400,
                    "BadRequest",
                    "Write request id : "
                    f"{item['id']} does not contain Content-Type header or "
                    "body.",
                )
            value = item["body"]
            body = value.encode() if isinstance(value, str) else json.dumps(value).encode()
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if outer.headers.get("authorization"):
            headers["Authorization"] = outer.headers["authorization"]
        target = "/v1.0" + ("" if url.startswith("/") else "/") + url
        inner = Request(
            item["method"], target, headers, body, base_url=outer.base_url, secure=outer.secure
        )
        response, fault = self.sandbox.handle(inner)
        self._local.request = outer
        if fault is not None and fault.kind == "lost_response":
            return _inner_error(item["id"], 504, "GatewayTimeout", "The request timed out.")
        answer: dict[str, Any] = {
            "id": item["id"],
            "status": response.status,
            "headers": {k: v for k, v in response.headers.items() if k.lower() != "content-length"},
        }
        if response.body:
            try:
                answer["body"] = json.loads(response.body)
            except ValueError:
                answer["body"] = response.body.decode("utf-8", "replace")
        return answer


def _inner_error(request_id: str, status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "status": status,
        "headers": {"Content-Type": "application/json"},
        "body": {
            "error": {
                "code": code,
                "message": message,
                "innerError": {"date": now_iso(), "request-id": str(uuid.uuid4())},
            }
        },
    }


def _topological(items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Requests in an order that runs each after what it depends on; None on a cycle."""
    done: set[str] = set()
    order: list[dict[str, Any]] = []
    pending = list(items)
    while pending:
        ready = [
            i for i in pending if all(str(d).lower() in done for d in i.get("dependsOn") or [])
        ]
        if not ready:
            return None
        for item in ready:
            order.append(item)
            done.add(item["id"].lower())
            pending.remove(item)
    return order
