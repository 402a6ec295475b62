"""Microsoft's consent and tokens through msal (the Microsoft identity platform).

https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import msal
import msal.exceptions
import requests
from django.conf import settings

from calendars.errors import (
    AppCredentialsRejected,
    AuthorizationDenied,
    ProviderError,
    ReconnectRequired,
)
from calendars.providers.base import STORED_TOKEN_MARGIN, OAuthClient
from calendars.providers.outlook.graph import http_client
from calendars.providers.types import Authorization, Grant

SCOPES = ["Calendars.ReadWrite", "User.Read"]  # msal adds offline_access, openid, profile
# Errors of the token endpoint after which only a new consent helps.
RECONNECT_ERRORS = {"invalid_grant", "interaction_required", "consent_required"}
# msal keeps the authority's OpenID configuration (and its throttling state) here; per app
# instance by default, which is per call here, so every token lookup would fetch it again.
_MSAL_HTTP_CACHE: dict[str, Any] = {}


class OutlookOAuth(OAuthClient):
    def _app(self, cache: msal.SerializableTokenCache | None = None) -> Any:
        try:
            return msal.ConfidentialClientApplication(
                settings.OUTLOOK_CLIENT_ID,
                client_credential=settings.OUTLOOK_CLIENT_SECRET,
                authority=settings.OUTLOOK_AUTHORITY,
                # Our authority may be a tenant, a national cloud or the sandbox: read its own
                # OpenID configuration instead of asking login.microsoftonline.com about it.
                instance_discovery=False,
                http_client=http_client(),
                http_cache=_MSAL_HTTP_CACHE,
                token_cache=cache,
            )
        except (ValueError, requests.RequestException, msal.exceptions.MsalError) as error:
            # msal reads the authority's OpenID configuration here.
            raise ProviderError(
                f"Microsoft's sign-in service could not be reached ({type(error).__name__})."
            ) from None

    def start(
        self, *, redirect_uri: str, state: str, login_hint: str = "", missing_only: bool = False
    ) -> Authorization:
        extra = {"login_hint": login_hint} if login_hint else {}
        with warnings.catch_warnings():
            # msal recommends response_mode=form_post; that is a cross-site POST, which the
            # SameSite=Lax session cookie does not accompany, so the learner would arrive
            # signed out. The code is single-use and PKCE-bound, which is what protects it.
            warnings.filterwarnings("ignore", message="response_mode='form_post'")
            flow = self._app().initiate_auth_code_flow(
                SCOPES, redirect_uri=redirect_uri, state=state, prompt="select_account", **extra
            )
        url = flow.pop("auth_uri")
        return Authorization(url=url, flow=flow)

    def finish(self, *, flow: dict[str, Any], redirect_uri: str, params: dict[str, str]) -> Grant:
        if params.get("error"):
            raise AuthorizationDenied(f"Microsoft: {params['error']}")
        cache = msal.SerializableTokenCache()
        try:
            result = self._app(cache).acquire_token_by_auth_code_flow(flow, params, scopes=SCOPES)
        except json.JSONDecodeError:  # before ValueError, which it is
            raise ProviderError("Microsoft sent an answer that could not be read.") from None
        except ValueError:  # msal: state or nonce mismatch
            raise ProviderError(
                "Microsoft's answer did not match the request.", permanent=True
            ) from None
        except (requests.RequestException, msal.exceptions.MsalError) as error:
            raise ProviderError(
                f"Microsoft could not be reached ({type(error).__name__})."
            ) from None
        if "error" in result:
            _raise_if_app_refused(result)
            raise ProviderError(
                f"Microsoft refused the code ({result['error']}).", permanent=True
            ) from None
        claims = result.get("id_token_claims") or {}
        return Grant(
            credentials={"cache": cache.serialize()},
            access_token=result["access_token"],
            expires_at=_expiry(result),
            scopes=sorted(str(result.get("scope", "")).split()),
            account_email=claims.get("preferred_username", ""),
            account_name=claims.get("name", ""),
        )

    def stored_access_token(self, credentials: dict[str, Any]) -> str | None:
        """The access token msal's cache holds for our scopes, read as msal reads it, unless
        it expires within the margin or msal would refresh it ahead of time (`refresh_on`)."""
        if not credentials.get("cache"):
            return None
        cache = msal.SerializableTokenCache()
        cache.deserialize(credentials["cache"])
        now = datetime.now(UTC).timestamp()
        for entry in cache.search(
            msal.TokenCache.CredentialType.ACCESS_TOKEN,
            target=SCOPES,
            now=now + STORED_TOKEN_MARGIN.total_seconds(),
        ):
            if "refresh_on" in entry and int(entry["refresh_on"]) <= now:
                continue
            return str(entry["secret"])
        return None

    def access_token(self, credentials: dict[str, Any], *, force: bool = False) -> Grant:
        cache = msal.SerializableTokenCache()
        if credentials.get("cache"):
            cache.deserialize(credentials["cache"])
        app = self._app(cache)
        accounts = app.get_accounts()
        if not accounts:
            raise ReconnectRequired("Microsoft: no account in the stored credentials.")
        try:
            result = app.acquire_token_silent_with_error(
                SCOPES, account=accounts[0], force_refresh=force
            )
        except json.JSONDecodeError:
            raise ProviderError("Microsoft sent an answer that could not be read.") from None
        except (requests.RequestException, msal.exceptions.MsalError) as error:
            raise ProviderError(
                f"Microsoft could not be reached ({type(error).__name__})."
            ) from None
        if not result:
            raise ReconnectRequired("Microsoft: the stored refresh token is missing.")
        if "error" in result:
            _raise_if_app_refused(result)
            if result["error"] in RECONNECT_ERRORS:
                raise ReconnectRequired("Microsoft: the authorization was revoked or expired.")
            raise ProviderError(f"Microsoft refused to refresh the token ({result['error']}).")
        # Refresh tokens rotate: the cache now holds the new one, and only it works.
        stored = {"cache": cache.serialize()} if cache.has_state_changed else dict(credentials)
        return Grant(stored, result["access_token"], _expiry(result))

    def revoke(self, credentials: dict[str, Any]) -> bool:
        """Microsoft has no per-application revocation endpoint: erasing the cache is all."""
        return False


# What the operator must do, by the AADSTS code that refused the application's credentials
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
APP_CREDENTIAL_FIXES = {
    7000222: "the client secret has expired: create a new one",
    7000215: "the client secret is wrong (give the secret's value, not its ID)",
    7000218: "no client secret was sent: set one",
    700016: "the application (OUTLOOK_CLIENT_ID) is not registered in this directory",
}


def _raise_if_app_refused(result: dict[str, Any]) -> None:
    """invalid_client (or an unknown app) is the operator's to fix, not the learner's."""
    if result.get("error") not in {"invalid_client", "unauthorized_client"}:
        return
    codes = [int(c) for c in result.get("error_codes") or [] if str(c).isdigit()]
    code = next((c for c in codes if c in APP_CREDENTIAL_FIXES), codes[0] if codes else None)
    why = APP_CREDENTIAL_FIXES.get(code or 0, "the application's credentials were refused")
    label = f"AADSTS{code}" if code else result["error"]
    raise AppCredentialsRejected(
        f"Microsoft refuses the application's credentials ({label}: {why}). In the Azure "
        "portal (App registrations › Certificates & secrets), put a valid client secret in "
        "OUTLOOK_CLIENT_SECRET and restart: Outlook syncs resume by themselves."
    )


def _expiry(result: dict[str, Any]) -> datetime | None:
    seconds = result.get("expires_in")
    return datetime.now(UTC) + timedelta(seconds=int(seconds)) if seconds else None
