"""Waiting after temporary provider failures: within a run (backoff between attempts at one
request) and between runs (the next sync after a failed one)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from django.conf import settings

from calendars.errors import ProviderError

# The engine waits through these; tests replace it to record the waits instead.
sleep: Callable[[float], None] = time.sleep


def backoff(error: ProviderError, attempt: int) -> float:
    """The provider's Retry-After when it gives one, else exponential backoff with full
    jitter (https://developers.google.com/calendar/api/guides/errors)."""
    if error.retry_after is not None:
        return min(error.retry_after, settings.CALENDAR_RETRY_MAX_WAIT)
    ceiling = min(settings.CALENDAR_RETRY_MAX_WAIT, settings.CALENDAR_RETRY_BASE * 2**attempt)
    return random.uniform(0, ceiling)  # noqa: S311 (jitter, not a secret)


def retry_delay(failures: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after `failures` failures in a row: one minute,
    doubled each time up to CALENDAR_SYNC_RETRY_MAX, with jitter (half of it random, so
    that syncs failing together do not retry together), and at least `retry_after`."""
    ceiling = min(float(settings.CALENDAR_SYNC_RETRY_MAX), 60.0 * 2 ** min(failures - 1, 20))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not a secret)
    return max(delay, retry_after or 0.0)
