"""Every error the calendar integration raises on purpose, in one tree.

    CalendarError
    ├── Refused              what a learner asked for cannot be done; `code` and a message
    │                        in the learner's language (pages show it, the API returns both)
    ├── UndecryptableError   a stored credential no configured key can read
    ├── LockTimeout          a lock (calendars.locking) stayed taken longer than allowed
    └── ProviderError        a provider call failed: `permanent` or temporary (retried)
        ├── ReconnectRequired    the grant is gone: only a new consent helps
        │   ├── ScopeMissing     a permission the integration needs was not granted (or withdrawn)
        │   └── CredentialsUnreadable  the stored grant no configured key can read
        ├── RateLimited          the provider asks us to slow down (temporary)
        ├── AuthorizationDenied  the learner or the provider refused the authorization
        ├── AppCredentialsRejected  the provider refuses the application itself (its
        │                        client secret expired or is wrong): an operator must act
        ├── PushNotSupported     the provider does not push changes of this calendar: poll it
        ├── Unauthorized         a 401: refresh the access token once, then try again
        └── SyncTokenExpired     the sync token or delta link is refused: list everything again

Messages of provider errors go to logs and the admin; they never contain a token, code or key.
What a learner is told is the catalogue's sentence for the failure (calendars.failures).
"""

from __future__ import annotations

from typing import Any


class CalendarError(Exception):
    """The root of the calendar integration's errors."""


class Refused(CalendarError):
    """A request of the learner's that cannot be carried out (a flow that cannot complete, a
    formation that cannot be exported, a calendar that cannot receive formations).

    `message` is for the learner, in their language (often a lazy translation); `code` is
    stable and machine-readable, one of the catalogue's (calendars.failures), and the API's
    `error.code`."""

    def __init__(self, message: Any, *, code: str, log_detail: str = "") -> None:
        super().__init__(str(message))
        self.message = message
        self.code = code
        self.log_detail = log_detail  # a finer reason than `code`, for the security log


class UndecryptableError(CalendarError):
    """A stored credential that no configured key can read (the key was lost or changed)."""


class LockTimeout(CalendarError):
    """A lock was still held by another sync when the wait allowed for it ran out."""

    def __init__(self, name: str, wait: float) -> None:
        super().__init__(f"The {name} lock was still taken after {wait:g} s.")
        self.name = name
        self.wait = wait


class ProviderError(CalendarError):
    """A provider call failed. `permanent` failures (grant revoked, calendar gone) need the
    learner; the others (rate limit, 5xx, timeout) are retried later. The message is shown
    to staff and logged: it never contains a token, code or key."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status  # the provider's HTTP status, when it answered
        # The catalogue's code (calendars.failures), when neither the type nor the status
        # tells it: a failure recorded earlier and raised again, a run's failed exports.
        self.code = code


class ReconnectRequired(ProviderError):
    """The grant is gone (revoked, expired, too many tokens): only a new consent helps."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message, permanent=True, code=code)


class ScopeMissing(ReconnectRequired):
    """The learner did not grant, or later withdrew, a permission the integration needs
    (Google's granular consent lets them untick any): asking again for just it helps."""


class CredentialsUnreadable(ReconnectRequired):
    """The stored grant can no longer be decrypted (the key was lost or changed): only a new
    consent helps, though nothing happened at the provider."""


class RateLimited(ProviderError):
    """The provider asks us to slow down (429, Google's 403 rateLimitExceeded or daily
    quotaExceeded): temporary, retried after `retry_after` when it is given."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after, status=status)


class AuthorizationDenied(ProviderError):
    """The learner refused, or the provider refused the authorization request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class AppCredentialsRejected(ProviderError):
    """The provider refused the application's own credentials (client id or secret): no
    learner can fix it and no retry helps. The message says what the operator must do."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class PushNotSupported(ProviderError):
    """The provider sends no notifications for this calendar (Google's holiday, birthday and
    other generated calendars): it is polled by the periodic sync."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True, status=400)


class Unauthorized(ProviderError):
    """An API call got 401: refresh the access token once, then try again."""


class SyncTokenExpired(ProviderError):
    """The stored sync token or delta link is no longer valid (410): import everything again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False)
