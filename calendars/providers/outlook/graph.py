"""Microsoft Graph over HTTP: one kept session per thread, our timeout and trusted
authorities on every call, and Graph's answers turned into our two kinds of error.

https://learn.microsoft.com/graph/errors and https://learn.microsoft.com/graph/throttling
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import requests
from django.conf import settings

from calendars.errors import ProviderError, RateLimited, SyncTokenExpired, Unauthorized
from calendars.providers.base import retry_after_seconds
from core.tls import outlook_verify


class _Session(requests.Session):
    """requests lets REQUESTS_CA_BUNDLE override a session's `verify`; here OUTLOOK_CA_BUNDLE
    (added to the usual authorities) always wins, while proxy variables still apply. msal
    ignores its own `timeout` when given a session, so the session sets it on every call."""

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        merged = super().merge_environment_settings(*args, **kwargs)
        merged["verify"] = self.verify
        return merged

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", settings.CALENDAR_HTTP_TIMEOUT)
        return super().request(*args, **kwargs)


_local = threading.local()


def http_client() -> requests.Session:
    """One session per thread, kept: its connections (and their TLS handshakes, and the
    loading of the certificate authorities each new one costs) serve every later call."""
    verify = outlook_verify()
    session = getattr(_local, "session", None)
    if session is None or session.verify != verify:
        session = _Session()
        session.verify = verify
        _local.session = session
    return session


def graph_get(access_token: str, url: str, headers: dict[str, str] | None = None) -> Any:
    """One Graph GET, with Graph's answers turned into our two kinds of error."""
    return graph_request(access_token, "GET", url, headers=headers)


def graph_request(
    access_token: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json: dict[str, Any] | None = None,
    absent_ok: bool = False,
) -> Any:
    """One Graph request, with Graph's answers turned into our two kinds of error; with
    `absent_ok`, a 404 (nothing there to act on) is no error. Gives the JSON answer, or None
    when there is no body (204).

    https://learn.microsoft.com/graph/errors and https://learn.microsoft.com/graph/throttling
    """
    try:
        response = http_client().request(
            method,
            url,
            headers={"Authorization": f"Bearer {access_token}", **(headers or {})},
            json=json,
            timeout=settings.CALENDAR_HTTP_TIMEOUT,
        )
    except requests.RequestException as error:
        raise ProviderError(
            f"Microsoft Graph could not be reached ({type(error).__name__})."
        ) from None
    if absent_ok and response.status_code == 404:
        return None
    if response.status_code == 204:
        return None
    if response.status_code == 401:
        raise Unauthorized("Microsoft Graph refused the access token.")
    if response.status_code == 410:
        raise SyncTokenExpired("Microsoft Graph wants a full listing again (delta link expired).")
    if response.status_code >= 400:
        raise graph_error(response)
    try:
        return response.json()
    except ValueError:
        raise ProviderError("Microsoft Graph sent an answer that could not be read.") from None


def graph_error(response: requests.Response) -> ProviderError:
    status = response.status_code
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "unknown"
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429:
        return RateLimited(
            f"Microsoft Graph answered {status} ({code}).", retry_after=retry_after, status=status
        )
    if status >= 500:
        return ProviderError(
            f"Microsoft Graph answered {status} ({code}).", retry_after=retry_after, status=status
        )
    return ProviderError(
        f"Microsoft Graph answered {status} ({code}).", permanent=True, status=status
    )


def graph_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def graph_instant(value: str) -> datetime:
    """An instant Graph gives in UTC ("...Z", seven fractional digits)."""
    return graph_datetime(value.rstrip("Zz")).replace(tzinfo=UTC)


def graph_datetime(value: str) -> datetime:
    """Graph writes seven fractional digits; Python reads six."""
    main, _, fraction = value.partition(".")
    return datetime.fromisoformat(f"{main}.{(fraction + '000000')[:6]}" if fraction else main)
