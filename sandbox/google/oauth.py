"""OAuth 2.0 state: authorization codes, grants and the tokens they issued, and the scopes.

Shared by the authorization endpoint (authorize.py), the token endpoint (tokens.py) and the
Calendar API, which checks access tokens against it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sandbox.google.errors import GoogleError
from sandbox.server import Request
from sandbox.store import Account, Store

ISSUER = "https://accounts.google.com"
SCOPE_PREFIX = "https://www.googleapis.com/auth/"
USERINFO_EMAIL = SCOPE_PREFIX + "userinfo.email"
USERINFO_PROFILE = SCOPE_PREFIX + "userinfo.profile"
# Google answers with the long names of the short OpenID scopes, and adds "openid" to them; a
# client that compares scopes strictly (oauthlib without OAUTHLIB_RELAX_TOKEN_SCOPE) notices.
SCOPE_ALIASES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}
IDENTITY_SCOPES = {
    "openid": "Associate you with your personal info on Google",
    USERINFO_EMAIL: "See your primary Google Account email address",
    USERINFO_PROFILE: "See your personal info, including any personal info you've made publicly "
    "available",
}


@dataclass
class Grant:
    """What one code exchange created: a refresh token (offline access) and access tokens."""

    id: str
    email: str
    client_id: str
    scopes: tuple[str, ...]
    refresh_token: str | None
    nonce: str | None = None
    created: float = field(default_factory=time.time)
    revoked: bool = False


@dataclass
class AccessToken:
    value: str
    grant: Grant
    expires_at: float

    def valid(self) -> bool:
        return not self.grant.revoked and time.time() < self.expires_at


@dataclass
class AuthCode:
    value: str
    client_id: str
    redirect_uri: str
    email: str
    scopes: tuple[str, ...]
    challenge: str | None
    challenge_method: str
    offline: bool  # whether the exchange issues a refresh token
    nonce: str | None
    expires_at: float
    used: bool = False
    grant: Grant | None = None


def normalize_scopes(requested: list[str]) -> tuple[str, ...]:
    scopes = {SCOPE_ALIASES.get(scope, scope) for scope in requested}
    if scopes & {USERINFO_EMAIL, USERINFO_PROFILE}:
        scopes.add("openid")
    return tuple(sorted(scopes))


class OAuthState:
    """What the authorization and token endpoints issued, which the Calendar API checks."""

    def __init__(self, store: Store, lock: threading.Lock) -> None:
        self.store = store
        self.lock = lock
        self.codes: dict[str, AuthCode] = {}
        self.grants: list[Grant] = []
        self.refresh_tokens: dict[str, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}

    # --- what the control API and tests ask, through GoogleSandbox --------------------------

    def revoke_account(self, account: Account) -> None:
        """Every grant of `account` is revoked: its refresh tokens give invalid_grant."""
        with self.lock:
            for grant in self.grants:
                if grant.email == account.email:
                    grant.revoked = True
            for code in self.codes.values():
                if code.email == account.email:
                    code.used = True

    def withdraw_scope(self, account: Account, scope: str) -> bool:
        """The learner takes one permission back in their Google account
        (myaccount.google.com › Security › Third-party connections): calls that need it get
        403 insufficientPermissions from now on. False when no grant held it."""
        withdrawn = False
        with self.lock:
            for grant in self.grants:
                if grant.email == account.email and scope in grant.scopes:
                    grant.scopes = tuple(s for s in grant.scopes if s != scope)
                    withdrawn = True
        return withdrawn

    def issued_tokens(self) -> set[str]:
        """Every access and refresh token handed out, for tests that look for leaks."""
        with self.lock:
            return set(self.access_tokens) | set(self.refresh_tokens)

    def expire_access_tokens(self, account: Account) -> None:
        """Every access token of `account` is refused from now on (401)."""
        with self.lock:
            for token in self.access_tokens.values():
                if token.grant.email == account.email:
                    token.expires_at = 0

    def granted_scopes(self, email: str, client_id: str) -> set[str]:
        with self.lock:
            return {
                scope
                for grant in self.grants
                if grant.email == email and grant.client_id == client_id and not grant.revoked
                for scope in grant.scopes
            }

    def account_of_token(self, value: str | None) -> Account | None:
        record = self.access_tokens.get(value) if value else None
        return self.store.account(record.grant.email) if record else None

    def identify_bearer(self, request: Request) -> Account | None:
        try:
            return self.account_of_token(request.bearer() or request.arg("oauth_token"))
        except Exception:
            return None

    def access_token(self, request: Request) -> AccessToken:
        value = request.bearer() or request.arg("oauth_token")
        token = self.access_tokens.get(value) if value else None
        if token is None or not token.valid():
            raise GoogleError(401, "authError", "Invalid Credentials")
        return token
