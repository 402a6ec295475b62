"""Google's answers turned into our two kinds of error.

https://developers.google.com/calendar/api/guides/errors
"""

from __future__ import annotations

from typing import Any

import httplib2
from googleapiclient.errors import HttpError

from calendars.errors import ProviderError, SyncTokenExpired, Unauthorized
from calendars.providers.base import retry_after_seconds

RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}


def execute(request: Any, *, expect_object: bool = True, absent_ok: bool = False) -> Any:
    """Runs a client-library request, turning Google's answers into our two kinds of error;
    with `absent_ok`, a 404 (nothing there to act on) is no error and gives None.

    https://developers.google.com/calendar/api/guides/errors
    """
    try:
        result = request.execute(num_retries=0)
    except HttpError as error:
        if absent_ok and error.resp.status == 404:
            return None
        raise error_from(error) from None
    except (httplib2.HttpLib2Error, OSError) as error:  # timeouts, refused connections
        raise ProviderError(f"Google could not be reached ({type(error).__name__}).") from None
    except ValueError:  # a body that is not JSON
        raise ProviderError("Google sent an answer that could not be read.") from None
    # googleapiclient hands a 2xx body that is not JSON back as a string.
    if expect_object and not isinstance(result, dict):
        raise ProviderError("Google sent an answer that could not be read.")
    return result


def error_from(error: HttpError) -> ProviderError:
    status = error.resp.status
    reasons = {d.get("reason") for d in (error.error_details or []) if isinstance(d, dict)}
    retry_after = retry_after_seconds(error.resp.get("retry-after"))
    if status == 401:
        return Unauthorized("Google refused the access token.")
    if status == 410 and "fullSyncRequired" in reasons:
        return SyncTokenExpired("Google wants a full listing again (sync token expired).")
    if status == 429 or (status == 403 and reasons & RATE_LIMIT_REASONS):
        return ProviderError("Google's rate limit was reached.", retry_after=retry_after)
    if status == 403 and "quotaExceeded" in reasons:
        # The daily quota: retrying soon does not help.
        return ProviderError("Google's usage limit was reached.", retry_after=3600)
    if status >= 500:
        return ProviderError(f"Google answered {status}.", retry_after=retry_after)
    return ProviderError(f"Google answered {status} ({', '.join(sorted(reasons)) or 'error'}).",
                         permanent=True)  # fmt: skip
