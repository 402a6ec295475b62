"""Sign-in with Google and Microsoft through the configured provider endpoints.

social_core's backends hard-code the public hosts; these read the same settings as the
calendar connection (GOOGLE_*_URI, GOOGLE_API_URL, OUTLOOK_AUTHORITY, OUTLOOK_GRAPH_URL), so
national clouds, tenants and the sandbox work for sign-in too.
"""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from social_core.backends.google import GoogleOAuth2
from social_core.backends.microsoft import MicrosoftOAuth2

from core.tls import outlook_verify


class ProfileWithUser:
    """The signed-in user read with their profile, in one query: every page reads their
    language and time zone (accounts.middleware.PreferencesMiddleware). Otherwise
    social_core's own get_user: the active users only, as SOCIAL_AUTH_ACTIVE_USERS_FILTER
    says."""

    strategy: Any

    def get_user(self, user_id: Any) -> Any | None:
        storage = self.strategy.storage.user
        users = list(storage.filter_active_users(pk=user_id).select_related("profile"))
        return users[0] if len(users) == 1 else None


class GoogleSignIn(ProfileWithUser, GoogleOAuth2):
    def authorization_url(self) -> str:
        return settings.GOOGLE_AUTH_URI

    def access_token_url(self) -> str:
        return settings.GOOGLE_TOKEN_URI

    def revoke_token_url(self, token: str, uid: str) -> str:
        return settings.GOOGLE_REVOKE_URI

    def user_data(self, access_token: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        response = self.get_json(
            f"{settings.GOOGLE_API_URL}oauth2/v3/userinfo",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        self.validate_email_verified(response)
        return response


class MicrosoftSignIn(ProfileWithUser, MicrosoftOAuth2):
    """Endpoints come from the authority's OpenID configuration, as msal reads them."""

    def setting(self, name: str, default: Any = None) -> Any:
        if name == "VERIFY_SSL":  # social_core's requests to Microsoft trust OUTLOOK_CA_BUNDLE too
            return outlook_verify()
        return super().setting(name, default)

    def _openid_configuration(self) -> dict[str, Any]:
        url = f"{settings.OUTLOOK_AUTHORITY}/v2.0/.well-known/openid-configuration"
        configuration = cache.get(url)
        if configuration is None:
            response = requests.get(url, timeout=10, verify=outlook_verify())
            response.raise_for_status()
            configuration = response.json()
            cache.set(url, configuration, 3600)
        return configuration

    def authorization_url(self) -> str:
        return self._openid_configuration()["authorization_endpoint"]

    def access_token_url(self) -> str:
        return self._openid_configuration()["token_endpoint"]

    def user_data(self, access_token: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        return self.get_json(
            f"{settings.OUTLOOK_GRAPH_URL}/me",
            headers={"Authorization": f"Bearer {access_token}"},
        )
