"""The identity platform's state: tenants, scopes, grants, codes, and the tokens they issue.

https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow. Shared by the
token endpoint (tokens.py), the sign-in pages (signin.py) and Graph, which checks access
tokens against it. Redeeming a refresh token gives a new one; the old one stays valid until
it expires, as with Entra ID, unless `Options.strict_refresh_rotation`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.microsoft.errors import invalid_grant
from sandbox.microsoft.formats import b64url
from sandbox.store import CONSUMERS_TENANT_ID, MICROSOFT, Account, utcnow

if TYPE_CHECKING:
    from sandbox.core import Sandbox


GRAPH_RESOURCE = "https://graph.microsoft.com/"
# Scopes the sandbox knows, by lower-cased name (scopes are case-insensitive in Entra ID).
GRAPH_SCOPES = {
    s.lower(): s
    for s in (
        "User.Read",
        "User.ReadBasic.All",
        "Calendars.Read",
        "Calendars.ReadWrite",
        "Calendars.Read.Shared",
        "Calendars.ReadWrite.Shared",
        "MailboxSettings.Read",
    )
}
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
# What `.default` stands for: the permissions configured on the sandbox's app registration.
DEFAULT_APP_SCOPES = ("Calendars.ReadWrite", "User.Read")
READ_SCOPES = {
    "Calendars.Read",
    "Calendars.ReadWrite",
    "Calendars.Read.Shared",
    "Calendars.ReadWrite.Shared",
}
WRITE_SCOPES = {"Calendars.ReadWrite", "Calendars.ReadWrite.Shared"}
USER_SCOPES = {"User.Read", "User.ReadBasic.All"}

SPENT_TOKENS_KEPT = 50_000


@dataclass
class Tenant:
    kind: str  # common, organizations, consumers, tenant
    id: str = ""  # the tenant id for kind "tenant"

    @property
    def segment(self) -> str:
        return self.id if self.kind == "tenant" else self.kind

    def allows(self, account: Account) -> bool:
        if account.provider != MICROSOFT:
            return False
        if self.kind == "common":
            return True
        if self.kind == "organizations":
            return account.tenant_id != CONSUMERS_TENANT_ID
        if self.kind == "consumers":
            return account.tenant_id == CONSUMERS_TENANT_ID
        return account.tenant_id == self.id


@dataclass
class TenantPolicy:
    """What an organisation's administrator decided for its members (Entra admin center,
    Enterprise applications › Consent and permissions)."""

    user_consent: bool = True  # members may consent to applications themselves
    admin_consented: set[str] = field(default_factory=set)  # apps approved for everyone


@dataclass
class Grant:
    id: str
    email: str
    client_id: str
    scopes: set[str]
    created: datetime = field(default_factory=utcnow)
    revoked: bool = False


@dataclass
class Code:
    grant_id: str
    email: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    expires: float
    used: bool = False


@dataclass
class RefreshToken:
    grant_id: str
    email: str
    client_id: str
    expires: float
    issued: datetime = field(default_factory=utcnow)


@dataclass
class AccessToken:
    grant_id: str
    email: str
    client_id: str
    scopes: frozenset[str]
    expires: float


def client_info_of(account: Account) -> str:
    info = {"uid": account.uid, "utid": account.tenant_id}
    return b64url(json.dumps(info, separators=(",", ":")).encode())


class Identity:
    def __init__(self, sandbox: Sandbox, lock: threading.RLock) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self._lock = lock
        self._signing_key: rsa.RSAPrivateKey | None = None
        self.kid = ""
        self.grants: dict[str, Grant] = {}
        self.codes: dict[str, Code] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.spent_refresh_tokens: OrderedDict[str, str] = OrderedDict()  # token -> why
        self.access_tokens: dict[str, AccessToken] = {}
        self.tenant_policies: dict[str, TenantPolicy] = {}
        self.expired_secrets: set[str] = set()  # client ids whose secret is past its end date

    # --- what the control API and tests ask, through MicrosoftSandbox -----------------------

    def revoke_account(self, account: Account) -> None:
        """Every grant of `account` is revoked: its refresh tokens give invalid_grant."""
        with self._lock:
            for grant in self.grants.values():
                if grant.email == account.email:
                    grant.revoked = True
            for token, record in list(self.refresh_tokens.items()):
                if record.email == account.email:
                    del self.refresh_tokens[token]
                    self.spend(token, "revoked")
            for record in self.access_tokens.values():
                if record.email == account.email:
                    record.expires = 0

    def issued_tokens(self) -> set[str]:
        """Every access and refresh token handed out, for tests that look for leaks."""
        with self._lock:
            return (
                set(self.access_tokens) | set(self.refresh_tokens) | set(self.spent_refresh_tokens)
            )

    def expire_access_tokens(self, account: Account) -> None:
        """Every access token of `account` is refused from now on (401)."""
        with self._lock:
            for record in self.access_tokens.values():
                if record.email == account.email:
                    record.expires = 0

    def reset_operator_state(self) -> None:
        """Every tenant lets its members consent again and every app's secret is valid."""
        with self._lock:
            self.tenant_policies.clear()
            self.expired_secrets.clear()

    def policy(self, tenant_id: str) -> TenantPolicy:
        with self._lock:
            return self.tenant_policies.setdefault(tenant_id.lower(), TenantPolicy())

    def needs_admin_approval(self, account: Account, client_id: str) -> bool:
        """Whether `account` may not consent to `client_id` itself: its organisation lets no
        member consent and no administrator approved the app. Personal accounts consent."""
        if account.tenant_id == CONSUMERS_TENANT_ID:
            return False
        policy = self.policy(account.tenant_id)
        return not policy.user_consent and client_id not in policy.admin_consented

    # --- keys and tokens ----------------------------------------------------------------------

    def key(self) -> rsa.RSAPrivateKey:
        # Made on first use: most sandboxes never sign an id_token.
        with self._lock:
            if self._signing_key is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                der = key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - a key id, not security
                digest.update(der)
                self.kid = b64url(digest.finalize())
                self._signing_key = key
            return self._signing_key

    def spend(self, token: str, why: str) -> None:
        self.spent_refresh_tokens[token] = why
        while len(self.spent_refresh_tokens) > SPENT_TOKENS_KEPT:
            self.spent_refresh_tokens.popitem(last=False)

    def _issuer(self, tenant_id: str) -> str:
        return f"{self.sandbox.https_url}/{tenant_id}/v2.0"

    def _id_token(
        self, account: Account, client_id: str, scopes: Iterable[str], nonce: str | None
    ) -> str:
        key = self.key()
        now = int(time.time())
        subject = b64url(hashlib.sha256(f"{account.uid}:{client_id}".encode()).digest())
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": self._issuer(account.tenant_id),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": account.name,
            "oid": account.uid,
            "preferred_username": account.email,
            "sub": subject,
            "tid": account.tenant_id,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if "email" in scopes:
            claims["email"] = account.email
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def issue(
        self,
        grant: Grant,
        requested: list[str],
        *,
        nonce: str | None,
        client_info: bool,
    ) -> dict[str, Any]:
        account = self.store.account(grant.email)
        if account is None:
            raise invalid_grant(50034)
        options = self.sandbox.options
        graph = [s for s in requested if s not in OIDC_SCOPES] or sorted(grant.scopes)
        now = time.time()
        access = "EwB" + secrets.token_urlsafe(96)
        response: dict[str, Any] = {
            "token_type": "Bearer",
            # Entra ID answers with short Graph scope names and never lists offline_access.
            "scope": " ".join(
                [*graph, *(s for s in ("openid", "profile", "email") if s in requested)]
            ),
            "expires_in": options.access_token_lifetime,
            "ext_expires_in": options.access_token_lifetime,
            "access_token": access,
        }
        with self._lock:
            self.access_tokens[access] = AccessToken(
                grant.id,
                grant.email,
                grant.client_id,
                frozenset(graph),
                now + options.access_token_lifetime,
            )
            if "offline_access" in requested:
                refresh = "M.C5" + secrets.token_urlsafe(160)
                self.refresh_tokens[refresh] = RefreshToken(
                    grant.id, grant.email, grant.client_id, now + options.refresh_token_lifetime
                )
                response["refresh_token"] = refresh
        if "openid" in requested:
            response["id_token"] = self._id_token(account, grant.client_id, requested, nonce)
        if client_info:
            response["client_info"] = client_info_of(account)
        return response

    # --- tenants and scopes -------------------------------------------------------------------

    def tenant(self, segment: str) -> Tenant | None:
        low = unquote(segment).lower()
        if low in {"common", "organizations", "consumers"}:
            return Tenant(low)
        accounts = self.store.accounts_of(MICROSOFT)
        ids = {a.tenant_id.lower() for a in accounts}
        if low in ids:
            return Tenant("tenant", low)
        domains = {
            a.email.rsplit("@", 1)[1].lower(): a.tenant_id
            for a in accounts
            if a.tenant_id != CONSUMERS_TENANT_ID
        }
        if low in domains:
            return Tenant("tenant", domains[low])
        return None

    @staticmethod
    def scopes(raw: str) -> tuple[list[str], list[str]]:
        """(known scopes in Entra ID's short form, in order, without repeats; unknown ones)."""
        known: list[str] = []
        unknown: list[str] = []
        for item in raw.split():
            name = item
            if item.lower().startswith(GRAPH_RESOURCE):
                name = item[len(GRAPH_RESOURCE) :]
            elif "://" in item or item.lower().startswith("api:"):
                unknown.append(item)
                continue
            if name.lower() == ".default":
                known.extend(DEFAULT_APP_SCOPES)
            elif name.lower() in OIDC_SCOPES:
                known.append(name.lower())
            elif name.lower() in GRAPH_SCOPES:
                known.append(GRAPH_SCOPES[name.lower()])
            else:
                unknown.append(item)
        return list(dict.fromkeys(known)), unknown
