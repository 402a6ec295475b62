"""Errors as Google words them: the Calendar API's JSON shape, and OAuth's (RFC 6749)."""

from __future__ import annotations

from typing import Any

from sandbox.server import HTTPError, Response

CANONICAL_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ABORTED",
    410: "GONE",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
USAGE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}
# The `google.rpc.ErrorInfo` Google adds in `error.details[]` for these reasons
# (https://cloud.google.com/apis/design/errors#error_info); googleapiclient's
# HttpError.error_details then gives `details`, not `errors`.
ERROR_INFO = {
    "rateLimitExceeded": "RATE_LIMIT_EXCEEDED",
    "userRateLimitExceeded": "RATE_LIMIT_EXCEEDED",
    "insufficientPermissions": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
}
OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_token",
    "redirect_uri_mismatch",
}


class GoogleError(HTTPError):
    """An error in Google's JSON shape, with the optional details of `errors[0]`."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        location: str | None = None,
        location_type: str = "parameter",
        domain: str | None = None,
        summary: str | None = None,  # the top-level message, when it differs from errors[0]'s
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, reason, message, headers=headers)
        self.location = location
        self.location_type = location_type
        self.domain = domain
        self.summary = summary


def invalid_parameter(name: str, message: str) -> GoogleError:
    return GoogleError(400, "invalidParameter", message, location=name)


def not_found() -> GoogleError:
    return GoogleError(404, "notFound", "Not Found")


def full_sync_required() -> GoogleError:
    """https://developers.google.com/workspace/calendar/api/guides/errors#410_gone"""
    return GoogleError(
        410,
        "fullSyncRequired",
        "Sync token is no longer valid, a full sync is required.",
        location="syncToken",
        domain="calendar",
    )


def google_error(error: HTTPError) -> Response:
    """Any HTTPError (the handlers' own, or a fault rule's) as Google renders errors."""
    domain = getattr(error, "domain", None) or (
        "usageLimits" if error.reason in USAGE_LIMIT_REASONS else "global"
    )
    item: dict[str, Any] = {"message": error.message, "domain": domain, "reason": error.reason}
    summary = getattr(error, "summary", None) or error.message
    location = getattr(error, "location", None)
    headers = dict(error.headers)
    if error.status == 401:
        location = location or "Authorization"
        item.update(locationType="header", location=location)
        summary = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project."
        )
        headers.setdefault(
            "WWW-Authenticate", 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
        )
    elif location:
        item.update(locationType=getattr(error, "location_type", "parameter"), location=location)
    status = CANONICAL_STATUS.get(error.status, "UNKNOWN")
    if error.reason == "duplicate":
        status = "ALREADY_EXISTS"
    body: dict[str, Any] = {
        "error": {"code": error.status, "message": summary, "errors": [item], "status": status}
    }
    if error.reason in ERROR_INFO:
        body["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": ERROR_INFO[error.reason],
                "domain": "googleapis.com",
                "metadata": {"service": "calendar-json.googleapis.com"},
            }
        ]
    return Response.json(body, error.status, headers)


def oauth_error(error: HTTPError) -> Response:
    """The token and revocation endpoints answer in OAuth's shape (RFC 6749, section 5.2)."""
    reason = error.reason
    if reason not in OAUTH_ERRORS:  # a fault rule's error
        reason = {
            401: "invalid_client",
            429: "rate_limit_exceeded",
            503: "temporarily_unavailable",
        }.get(error.status, "internal_failure" if error.status >= 500 else "invalid_request")
    response = Response.json(
        {"error": reason, "error_description": error.message}, error.status, error.headers
    )
    response.headers.setdefault("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
    return response
