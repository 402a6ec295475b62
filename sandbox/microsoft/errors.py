"""Errors: the identity platform's AADSTS texts, and the Graph errors several parts raise."""

from __future__ import annotations

from sandbox.server import HTTPError

# The identity platform's error texts the sandbox uses, by AADSTS code
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
AADSTS = {
    50011: "The redirect URI '{uri}' specified in the request does not match the redirect URIs "
    "configured for the application '{client}'.",
    50020: "User account '{email}' from identity provider does not exist in tenant '{tenant}' "
    "and cannot access the application.",
    50034: "The user account does not exist in the directory.",
    50058: "A silent sign-in request was sent but no user is signed in.",
    50148: "The code_verifier does not match the code_challenge supplied in the authorization "
    "request for PKCE.",
    50173: "The provided grant has expired due to it being revoked, a fresh auth token is "
    "needed. The user might have changed or reset their password.{issued}",
    54005: "OAuth2 Authorization code was already redeemed, please retry with a new valid code "
    "or use an existing refresh token.",
    65001: "The user or administrator has not consented to use the application with ID "
    "'{client}'. Send an interactive authorization request for this user and resource.",
    65004: "User declined to consent to access the app.",
    70000: "The provided value for the '{parameter}' parameter is not valid: {why}",
    70003: "The app requested an unsupported grant type '{grant_type}'.",
    70008: "The provided authorization code or refresh token has expired due to inactivity. "
    "Send a new interactive authorization request for this user and resource.",
    70011: "The provided value for the input parameter 'scope' is not valid. The scope "
    "'{scope}' does not exist.",
    90002: "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
    "are signing into the correct cloud.",
    90014: "This sign-in request has expired or was already used. Start again from the "
    "application.",
    90033: "A transient error has occurred. Please try again.",
    90055: "TenantThrottlingError: There are too many incoming requests.",
    90094: "The grant requires admin permission. {client} needs permission to access resources "
    "in your organization that only an admin can grant. Please ask an admin to grant "
    "permission to this app before you can use it.",
    500112: "The reply address '{given}' does not match the reply address '{expected}' "
    "provided when requesting Authorization code.",
    501481: "The Code_Verifier does not match the code_challenge supplied in the authorization "
    "request.",
    501491: "Invalid size of Code_Challenge parameter.",
    700016: "Application with identifier '{client}' was not found in the directory '{tenant}'.",
    700054: "response_type '{response_type}' is not enabled for the application.",
    700082: "The refresh token has expired due to inactivity.{issued}",
    7000215: "Invalid client secret provided. Ensure the secret being sent in the request is "
    "the client secret value, not the client secret ID, for a secret added to app '{client}'.",
    7000222: "The provided client secret keys for app '{client}' are expired. Visit the Azure "
    "portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
    "certificate credentials for added security: https://aka.ms/certCreds.",
    7000218: "The request body must contain the following parameter: 'client_assertion' or "
    "'client_secret'.",
    900144: "The request body must contain the following parameter: '{name}'.",
    9002313: "Invalid request. Request is malformed or invalid.",
}
ROTATED = (
    "it has already been used and was replaced by the refresh token issued with it "
    "(the sandbox rotates refresh tokens)."
)


def aadsts(code: int, **values: str) -> str:
    return f"AADSTS{code}: " + AADSTS[code].format(**values)


class OAuthError(HTTPError):
    def __init__(self, status: int, error: str, description: str, suberror: str = "") -> None:
        super().__init__(status, error, description)
        self.suberror = suberror


def invalid_grant(code: int, **values: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", aadsts(code, **values))


def denied() -> HTTPError:
    return HTTPError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def not_found() -> HTTPError:
    return HTTPError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def not_in_delta(name: str) -> HTTPError:
    text = f"The query parameter '${name}' is not supported with change tracking over the "
    return HTTPError(400, "ErrorInvalidUrlQuery", text + "'CalendarView' resource.")
