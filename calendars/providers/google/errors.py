"""Google's answers turned into our two kinds of error.

https://developers.google.com/calendar/api/guides/errors
"""

from __future__ import annotations

import json
from typing import Any

import httplib2
from googleapiclient.errors import HttpError

from calendars.errors import (
    ProviderError,
    PushNotSupported,
    RateLimited,
    ScopeMissing,
    SyncTokenExpired,
    Unauthorized,
)
from calendars.providers.base import retry_after_seconds

# Google words a reason in `error.errors[]` and, for many errors, again in `error.details[]`
# (google.rpc.ErrorInfo); googleapiclient's `error_details` gives only the latter when both
# are there, so both lists are read from the body.
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}
SCOPE_REASONS = {"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}


def execute(request: Any, *, expect_object: bool = True, absent_ok: bool = False) -> Any:
    """Runs a client-library request, turning Google's answers into our two kinds of error;
    with `absent_ok`, a 404 (nothing there to act on) is no error and gives None.

    https://developers.google.com/calendar/api/guides/errors
    """
    try:
        result = request.execute(num_retries=0)
    except HttpError as error:
        if absent_ok and getattr(getattr(error, "resp", None), "status", None) == 404:
            return None
        raise error_from(error) from None
    except (httplib2.HttpLib2Error, OSError) as error:  # timeouts, refused connections
        raise ProviderError(f"Google could not be reached ({type(error).__name__}).") from None
    except (ValueError, TypeError, KeyError):  # a body the client library cannot parse
        raise ProviderError("Google sent an answer that could not be read.") from None
    # googleapiclient hands a 2xx body that is not JSON back as a string.
    if expect_object and not isinstance(result, dict):
        raise ProviderError("Google sent an answer that could not be read.")
    return result


def reasons_of(error: HttpError) -> set[str]:
    """Every reason Google gave: `errors[].reason` and `details[].reason` alike."""
    reasons: set[str] = set()
    try:
        body = json.loads(error.content or b"{}")
    except (ValueError, TypeError):
        body = {}
    found = body.get("error") if isinstance(body, dict) else None
    lists = [found.get("errors"), found.get("details")] if isinstance(found, dict) else []
    lists.append(getattr(error, "error_details", None))
    for items in lists:
        if isinstance(items, list):
            reasons |= {str(d["reason"]) for d in items if isinstance(d, dict) and d.get("reason")}
    return reasons


def error_from(error: HttpError) -> ProviderError:
    response = getattr(error, "resp", None)
    status = getattr(response, "status", None)
    if not isinstance(status, int) or status < 400:
        # A batch answer the library could not take apart (it may report the batch's 200).
        return ProviderError("Google sent an answer that could not be read.")
    reasons = reasons_of(error)
    retry_after = retry_after_seconds(response.get("retry-after"))
    if status == 401:
        return Unauthorized("Google refused the access token.")
    if status == 400 and "pushNotSupportedForRequestedResource" in reasons:
        return PushNotSupported("Google sends no notifications for this calendar.")
    if status == 410:  # on a listing, whatever the reason given: list everything again
        return SyncTokenExpired("Google wants a full listing again (sync token expired).")
    if status == 429 or (status == 403 and reasons & RATE_LIMIT_REASONS):
        return RateLimited(
            "Google's rate limit was reached.", retry_after=retry_after, status=status
        )
    if status == 403 and reasons & SCOPE_REASONS:
        return ScopeMissing("Google: a permission the integration needs was withdrawn.")
    if status == 403 and "quotaExceeded" in reasons:
        # The daily quota: retrying soon does not help.
        return RateLimited("Google's usage limit was reached.", retry_after=3600, status=status)
    if status >= 500:
        return ProviderError(f"Google answered {status}.", retry_after=retry_after, status=status)
    return ProviderError(f"Google answered {status} ({', '.join(sorted(reasons)) or 'error'}).",
                         permanent=True, status=status)  # fmt: skip
