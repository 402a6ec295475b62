"""Writing events in Google's batches: at most 50 calls each, sent one after the other.

https://developers.google.com/calendar/api/guides/batch
"""

from __future__ import annotations

from typing import Any

import httplib2
from django.conf import settings
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from calendars.errors import ProviderError, Unauthorized
from calendars.providers.google.errors import error_from
from calendars.providers.types import Outcome, Write, WriteKind, WriteOutcome

BATCH_SIZE = 50  # Google's advice; each call still counts against the quota


def write_events(service: Any, writes: list[Write]) -> tuple[list[WriteOutcome], int]:
    """Carries out `writes`; returns one outcome per write and the number of requests sent."""
    outcomes: dict[int, WriteOutcome] = {}
    by_key = {write.key: write for write in writes}
    sent = 0

    def answered(request_id: str, response: Any, exception: Exception | None) -> None:
        write = by_key[int(request_id)]
        outcomes[write.key] = _write_outcome(write, response, exception)

    for start in range(0, len(writes), BATCH_SIZE):
        chunk = writes[start : start + BATCH_SIZE]
        batch = BatchHttpRequest(
            callback=answered, batch_uri=f"{settings.GOOGLE_API_URL}batch/calendar/v3"
        )
        for write in chunk:
            batch.add(_write_request(service, write), request_id=str(write.key))
        sent += 1
        try:
            batch.execute()
        except HttpError as error:
            failure = error_from(error)
            if isinstance(failure, Unauthorized):
                raise failure from None
        except (httplib2.HttpLib2Error, OSError) as error:
            failure = ProviderError(f"Google could not be reached ({type(error).__name__}).")
        except (ValueError, TypeError, KeyError):  # a multipart answer the library cannot parse
            failure = ProviderError("Google sent an answer that could not be read.")
        else:
            failure = ProviderError("Google's batch answer left out a call.")
        for write in chunk:  # calls the batch's answer did not cover
            if write.key not in outcomes:
                outcomes[write.key] = WriteOutcome(write.key, Outcome.FAILED, error=failure)
    return [outcomes[write.key] for write in writes], sent


def _write_request(service: Any, write: Write) -> Any:
    events = service.events()
    if write.kind == WriteKind.CREATE:
        return events.insert(
            calendarId=write.calendar_id, body={**(write.body or {}), "id": write.event_id}
        )
    if write.kind == WriteKind.UPDATE:
        # A patch leaves `status` alone: an event the learner deleted stays deleted, and the
        # answer says so.
        return events.patch(calendarId=write.calendar_id, eventId=write.event_id, body=write.body)
    if write.kind == WriteKind.DELETE:
        return events.delete(calendarId=write.calendar_id, eventId=write.event_id)
    raise ValueError(f"Google needs no {write.kind!r}: its event ids are chosen in advance.")


def _write_outcome(write: Write, response: Any, exception: Exception | None) -> WriteOutcome:
    if isinstance(exception, HttpError):
        status = getattr(getattr(exception, "resp", None), "status", None)
        if status == 409 and write.kind == WriteKind.CREATE:
            return WriteOutcome(write.key, Outcome.EXISTS, event_id=write.event_id)
        if status in (404, 410) and write.kind != WriteKind.CREATE:
            return WriteOutcome(write.key, Outcome.GONE, event_id=write.event_id)
        return WriteOutcome(write.key, Outcome.FAILED, error=error_from(exception))
    if exception is not None:
        return WriteOutcome(
            write.key,
            Outcome.FAILED,
            error=ProviderError(f"Google's answer could not be read ({type(exception).__name__})."),
        )
    if write.kind == WriteKind.DELETE:
        return WriteOutcome(write.key, Outcome.OK, event_id=write.event_id)
    if not isinstance(response, dict) or not response.get("id"):
        return WriteOutcome(
            write.key,
            Outcome.FAILED,
            error=ProviderError("Google sent an answer that could not be read."),
        )
    status = Outcome.REMOVED if response.get("status") == "cancelled" else Outcome.OK
    return WriteOutcome(
        write.key, status, event_id=response["id"], version=response.get("etag") or ""
    )
