"""Google's consent, tokens and revocation, through google-auth-oauthlib and google-auth.

https://developers.google.com/identity/protocols/oauth2/web-server
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import requests
from django.conf import settings
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from calendars.errors import (
    AppCredentialsRejected,
    AuthorizationDenied,
    ProviderError,
    ReconnectRequired,
    ScopeMissing,
)
from calendars.providers.base import STORED_TOKEN_MARGIN, OAuthClient
from calendars.providers.types import Authorization, Grant

logger = logging.getLogger(__name__)

EXPIRY_MARGIN = timedelta(seconds=60)  # refresh a little before Google would refuse
# Token errors that refuse the application itself (RFC 6749 5.2): the operator's to fix.
APP_ERRORS = ("invalid_client", "unauthorized_client")
APP_REFUSED = (
    "Google refuses the application's credentials (invalid_client). In the Google Cloud "
    "console (APIs & Services › Credentials), put the OAuth client's valid ID and secret in "
    "GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET and restart: Google syncs resume by themselves."
)
CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
CALENDAR_LIST = "https://www.googleapis.com/auth/calendar.calendarlist.readonly"
# The narrowest scopes that allow reading calendars and writing events, plus the identity.
# Both calendar scopes are needed: without the list, no calendar can be chosen or synced
# (a deliberate choice: no "primary calendar only" mode, README "Connecting calendars").
SCOPES = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    CALENDAR_EVENTS,
    CALENDAR_LIST,
]
NEEDED = [CALENDAR_EVENTS, CALENDAR_LIST]


class _Request(google.auth.transport.requests.Request):
    """google-auth's transport, with our timeout on every call (its default is 120 s)."""

    def __call__(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return super().__call__(*args, timeout=timeout or settings.CALENDAR_HTTP_TIMEOUT, **kwargs)


class GoogleOAuth(OAuthClient):
    def _flow(self, redirect_uri: str) -> Flow:
        config = {
            "web": {
                "client_id": settings.GOOGLE_CLIENT_ID,
                "client_secret": settings.GOOGLE_CLIENT_SECRET,
                "auth_uri": settings.GOOGLE_AUTH_URI,
                "token_uri": settings.GOOGLE_TOKEN_URI,
                "redirect_uris": [redirect_uri],
            }
        }
        return Flow.from_client_config(config, scopes=SCOPES, redirect_uri=redirect_uri)

    def start(
        self, *, redirect_uri: str, state: str, login_hint: str = "", missing_only: bool = False
    ) -> Authorization:
        flow = self._flow(redirect_uri)
        extra: dict[str, str] = {"login_hint": login_hint} if login_hint else {}
        if missing_only:
            # Incremental authorization: the calendar scopes only, and the code brings what
            # was granted before with it; Google's screen asks only for what is not granted.
            # https://developers.google.com/identity/protocols/oauth2/web-server#incrementalAuth
            flow.oauth2session.scope = ["openid", *NEEDED]
            extra["include_granted_scopes"] = "true"
        url, _state = flow.authorization_url(
            state=state, access_type="offline", prompt="consent", **extra
        )
        return Authorization(url=url, flow={"code_verifier": flow.code_verifier})

    def missing_scopes(self, granted: list[str]) -> list[str]:
        return [scope for scope in NEEDED if scope not in granted]

    def finish(self, *, flow: dict[str, Any], redirect_uri: str, params: dict[str, str]) -> Grant:
        if params.get("error"):
            raise AuthorizationDenied(f"Google: {params['error']}")
        if not params.get("code"):
            raise ProviderError("Google did not return an authorization code.", permanent=True)
        oauth = self._flow(redirect_uri)
        oauth.code_verifier = flow["code_verifier"]
        try:
            oauth.fetch_token(code=params["code"], timeout=settings.CALENDAR_HTTP_TIMEOUT)
        except Warning as changed:
            # Google granted other scopes than asked (the learner unticked some, or earlier
            # grants were added): oauthlib raises, with the token attached. The one scope
            # that matters is checked below.
            oauth.oauth2session.token = changed.token  # type: ignore[attr-defined]
        except OAuth2Error as error:
            if error.error in APP_ERRORS:
                raise AppCredentialsRejected(APP_REFUSED) from None
            raise ProviderError(
                f"Google refused the code ({error.error}).", permanent=True
            ) from None
        except requests.RequestException as error:
            raise ProviderError(f"Google could not be reached ({type(error).__name__}).") from None
        credentials = oauth.credentials
        granted = sorted(credentials.granted_scopes or oauth.oauth2session.token.get("scope", []))
        if CALENDAR_EVENTS not in granted:
            # Nothing can be done without the events: nothing is kept.
            self.revoke({"refresh_token": credentials.refresh_token, "token": credentials.token})
            raise ScopeMissing("Google: access to the calendar's events was not granted.")
        profile = self._userinfo(credentials.token)
        expires_at = _aware(credentials.expiry)
        return Grant(
            credentials={
                "token": credentials.token,
                "refresh_token": credentials.refresh_token,
                "expiry": expires_at.isoformat() if expires_at else None,
            },
            access_token=credentials.token,
            expires_at=expires_at,
            scopes=granted,
            account_email=profile.get("email", ""),
            account_name=profile.get("name", ""),
        )

    def _userinfo(self, token: str) -> dict[str, Any]:
        try:
            response = requests.get(
                f"{settings.GOOGLE_API_URL}oauth2/v3/userinfo",
                headers={"Authorization": f"Bearer {token}"},
                timeout=settings.CALENDAR_HTTP_TIMEOUT,
            )
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as error:
            raise ProviderError(
                f"Google's account details could not be read ({type(error).__name__})."
            ) from None

    def stored_access_token(self, credentials: dict[str, Any]) -> str | None:
        expiry = credentials.get("expiry")
        if not (credentials.get("token") and expiry):
            return None
        if datetime.fromisoformat(expiry) - STORED_TOKEN_MARGIN <= datetime.now(UTC):
            return None
        return str(credentials["token"])

    def access_token(self, credentials: dict[str, Any], *, force: bool = False) -> Grant:
        expiry = credentials.get("expiry")
        expires_at = datetime.fromisoformat(expiry) if expiry else None
        fresh = expires_at is not None and expires_at - EXPIRY_MARGIN > datetime.now(UTC)
        if not force and credentials.get("token") and fresh:
            return Grant(dict(credentials), credentials["token"], expires_at)
        if not credentials.get("refresh_token"):
            raise ReconnectRequired("Google gave no refresh token: the grant must be renewed.")
        google_credentials = Credentials(
            token=None,
            refresh_token=credentials["refresh_token"],
            token_uri=settings.GOOGLE_TOKEN_URI,
            client_id=settings.GOOGLE_CLIENT_ID,
            client_secret=settings.GOOGLE_CLIENT_SECRET,
        )
        try:
            google_credentials.refresh(_Request())
        except google.auth.exceptions.RefreshError as error:
            refused = _refresh_error(error)
            if refused in APP_ERRORS:
                raise AppCredentialsRejected(APP_REFUSED) from None
            if refused == "invalid_grant":
                raise ReconnectRequired(
                    "Google: the authorization was revoked or expired."
                ) from None
            raise ProviderError("Google refused to refresh the access token.") from None
        except google.auth.exceptions.TransportError:
            raise ProviderError("Google could not be reached to refresh the token.") from None
        except (ValueError, TypeError, KeyError):  # a 200 whose body is cut or not JSON
            raise ProviderError("Google sent an answer that could not be read.") from None
        expires_at = _aware(google_credentials.expiry)
        stored = {
            "token": google_credentials.token,
            "refresh_token": google_credentials.refresh_token or credentials["refresh_token"],
            "expiry": expires_at.isoformat() if expires_at else None,
        }
        return Grant(stored, google_credentials.token, expires_at)

    def revoke(self, credentials: dict[str, Any]) -> bool:
        token = credentials.get("refresh_token") or credentials.get("token")
        if not token:
            return False
        try:
            response = requests.post(
                settings.GOOGLE_REVOKE_URI,
                data={"token": token},
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=settings.CALENDAR_HTTP_TIMEOUT,
            )
        except requests.RequestException as error:
            logger.warning("Google revocation failed: %s", type(error).__name__)
            return False
        if response.status_code not in (200, 400):  # 400: already revoked or expired
            logger.warning("Google revocation answered %s", response.status_code)
            return False
        return True


def _aware(value: datetime | None) -> datetime | None:
    """google-auth keeps expiries as naive UTC datetimes."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _refresh_error(error: google.auth.exceptions.RefreshError) -> str:
    """The OAuth error code of a refused refresh (google-auth keeps the body's JSON)."""
    details = error.args[1] if len(error.args) > 1 else None
    if isinstance(details, dict):
        return str(details.get("error", ""))
    text = str(error.args[0] if error.args else "")
    return next((code for code in ("invalid_grant", *APP_ERRORS) if code in text), "")
