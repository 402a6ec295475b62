"""Writing events in Graph's JSON batches: at most 20 requests each, one batch at a time.

Outlook runs no more than 4 requests per mailbox at once, and Graph runs up to 4 requests of
one batch against it in parallel: a second batch in flight for the same mailbox would bring
429 MailboxConcurrency on inner requests (throttling-limits page, "Outlook service
batching"; microsoft-graph-docs #2886, #8760).

https://learn.microsoft.com/graph/json-batching
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from calendars.errors import ProviderError, RateLimited, Unauthorized
from calendars.providers.base import retry_after_seconds
from calendars.providers.outlook.graph import graph_error, http_client
from calendars.providers.outlook.normalize import EXPORT_TRANSACTION_PREFIX, FORMATION_PROPERTY_ID
from calendars.providers.types import Outcome, Write, WriteKind, WriteOutcome

BATCH_SIZE = 20  # Graph's limit per JSON batch


def write_events(access_token: str, writes: list[Write]) -> tuple[list[WriteOutcome], int]:
    """Carries out `writes`; returns one outcome per write and the number of requests sent."""
    chunks = [writes[i : i + BATCH_SIZE] for i in range(0, len(writes), BATCH_SIZE)]
    answers = [_send_batch(access_token, chunk) for chunk in chunks]
    if any(unauthorized for _outcomes, unauthorized in answers):
        raise Unauthorized("Microsoft Graph refused the access token.")
    outcomes = [outcome for chunk_outcomes, _ in answers for outcome in chunk_outcomes]
    return outcomes, len(chunks)


def _send_batch(access_token: str, writes: list[Write]) -> tuple[list[WriteOutcome], bool]:
    """One $batch; returns the outcomes, and whether the token was refused."""
    requests_ = [_batch_request(write) for write in writes]
    try:
        response = http_client().post(
            f"{settings.OUTLOOK_GRAPH_URL}/$batch",
            json={"requests": requests_},
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=settings.CALENDAR_HTTP_TIMEOUT,
        )
    except requests.RequestException as error:
        failure = ProviderError(f"Microsoft Graph could not be reached ({type(error).__name__}).")
        return [WriteOutcome(w.key, Outcome.FAILED, error=failure) for w in writes], False
    if response.status_code == 401:
        return [], True
    answers: dict[str, Any] = {}
    if response.status_code < 400:
        try:
            answers = {str(a.get("id")): a for a in response.json()["responses"]}
        except (ValueError, KeyError, TypeError, AttributeError):
            answers = {}
        failure = ProviderError("Microsoft Graph's batch answer left out a request.")
    else:
        failure = graph_error(response)
    outcomes, unauthorized = [], False
    for write in writes:
        answer = answers.get(str(write.key))
        if answer is None:
            outcomes.append(WriteOutcome(write.key, Outcome.FAILED, error=failure))
            continue
        unauthorized = unauthorized or answer.get("status") == 401
        outcomes.append(_batch_outcome(write, answer))
    return outcomes, unauthorized


def _batch_request(write: Write) -> dict[str, Any]:
    calendar = f"/me/calendars/{quote(write.calendar_id, safe='')}"
    event = f"/me/events/{quote(write.event_id, safe='')}"
    json_headers = {"Content-Type": "application/json"}
    request: dict[str, Any] = {"id": str(write.key)}
    if write.kind == WriteKind.CREATE:
        transaction = f"{EXPORT_TRANSACTION_PREFIX}{write.uid}-{write.copy}"
        body = {**(write.body or {}), "transactionId": transaction}
        request.update(method="POST", url=f"{calendar}/events", headers=json_headers, body=body)
    elif write.kind == WriteKind.UPDATE:
        request.update(method="PATCH", url=event, headers=json_headers, body=write.body)
    elif write.kind == WriteKind.DELETE:
        request.update(method="DELETE", url=event)
    else:  # find the formation's events by our extended property
        condition = (
            f"singleValueExtendedProperties/Any(ep: ep/id eq '{FORMATION_PROPERTY_ID}' "
            f"and ep/value eq '{write.uid}')"
        )
        query = f"$filter={quote(condition, safe='')}&$select=id,changeKey&$top=10"
        request.update(method="GET", url=f"{calendar}/events?{query}")
    return request


def inner_error(answer: dict[str, Any]) -> ProviderError:
    """The failure an inner answer of a `$batch` reports: 429 and 5xx are temporary, with
    the Retry-After Graph gives inside the answer."""
    status = answer.get("status")
    body = answer.get("body") if isinstance(answer.get("body"), dict) else {}
    headers = answer.get("headers") if isinstance(answer.get("headers"), dict) else {}
    retry = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    code = (body.get("error") or {}).get("code", "unknown") if body else "unknown"
    retry_after = retry_after_seconds(str(retry) if retry is not None else None)
    known = status if isinstance(status, int) else None
    if status == 429:
        return RateLimited(
            f"Microsoft Graph answered 429 ({code}).", retry_after=retry_after, status=429
        )
    return ProviderError(
        f"Microsoft Graph answered {status} ({code}).",
        permanent=known is not None and known < 500,
        retry_after=retry_after,
        status=known,
    )


def _batch_outcome(write: Write, answer: dict[str, Any]) -> WriteOutcome:
    status = answer.get("status")
    body = answer.get("body") if isinstance(answer.get("body"), dict) else {}
    if not isinstance(status, int):
        error = ProviderError("Microsoft Graph sent an answer that could not be read.")
        return WriteOutcome(write.key, Outcome.FAILED, error=error)
    if status == 404 and write.kind in (WriteKind.UPDATE, WriteKind.DELETE):
        return WriteOutcome(write.key, Outcome.GONE, event_id=write.event_id)
    if status >= 400:
        return WriteOutcome(write.key, Outcome.FAILED, error=inner_error(answer))
    if write.kind == WriteKind.DELETE:
        return WriteOutcome(write.key, Outcome.OK, event_id=write.event_id)
    if write.kind == WriteKind.FIND:
        found = [
            item for item in body.get("value") or [] if isinstance(item, dict) and item.get("id")
        ]
        if not found:
            return WriteOutcome(write.key, Outcome.MISSING)
        return WriteOutcome(
            write.key,
            Outcome.OK,
            event_id=found[0]["id"],
            version=found[0].get("changeKey") or "",
            duplicates=[item["id"] for item in found[1:]],
        )
    if not body.get("id"):
        error = ProviderError("Microsoft Graph sent an answer that could not be read.")
        return WriteOutcome(write.key, Outcome.FAILED, error=error)
    return WriteOutcome(
        write.key, Outcome.OK, event_id=body["id"], version=body.get("changeKey") or ""
    )
