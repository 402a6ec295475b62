"""The token, revocation, userinfo, keys and discovery endpoints, and the id_tokens they sign.

https://developers.google.com/identity/protocols/oauth2/web-server: refresh tokens that do
not rotate (at most 100 per account and client), revocation of whole grants, RS256 id_tokens
(https://developers.google.com/identity/openid-connect/openid-connect). Errors are in
OAuth's shape.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox.google.errors import GoogleError
from sandbox.google.formats import b64
from sandbox.google.oauth import (
    ISSUER,
    USERINFO_EMAIL,
    USERINFO_PROFILE,
    AccessToken,
    Grant,
    OAuthState,
    normalize_scopes,
)
from sandbox.server import HTTPError, Request, Response, Router
from sandbox.store import Account

if TYPE_CHECKING:
    from sandbox.core import Sandbox


REFRESH_TOKENS_PER_CLIENT = 100  # Google revokes the oldest beyond this, per account and client


# --- signing keys -------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: bytes
    certificate_pem: str
    jwk: dict[str, Any]


@functools.cache
def signing_key() -> SigningKey:
    """One RSA key per process, with the self-signed certificate /oauth2/v1/certs serves."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox.accounts.google.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=14))
        .sign(key, hashes.SHA256())
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = hashlib.sha1(public_der).hexdigest()  # noqa: S324 (an identifier, as Google's are)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig", alg="RS256")
    return SigningKey(
        kid=kid,
        private_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        jwk=jwk,
    )


class TokenEndpoint:
    def __init__(self, sandbox: Sandbox, state: OAuthState, router: Router) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.state = state
        router.route("POST", r"/token", "google.token", identify=self._identify_token_request)(
            self._token
        )
        router.route("POST", r"/revoke", "google.revoke", identify=self._identify_revoke)(
            self._revoke
        )
        router.route("GET", r"/oauth2/v1/certs", "google.certs")(self._certs_v1)
        router.route("GET", r"/oauth2/v3/certs", "google.certs")(self._certs_v3)
        router.route(
            "GET", r"/oauth2/v3/userinfo", "google.userinfo", identify=state.identify_bearer
        )(self._userinfo)
        router.route("GET", r"/\.well-known/openid-configuration", "google.openid")(
            self._openid_configuration
        )

    def _identify_token_request(self, request: Request) -> Account | None:
        try:
            form = _form(request)
            grant = self.state.refresh_tokens.get(form.get("refresh_token", ""))
            if grant is not None:
                return self.store.account(grant.email)
            code = self.state.codes.get(form.get("code", ""))
            return self.store.account(code.email) if code else None
        except Exception:
            return None

    def _identify_revoke(self, request: Request) -> Account | None:
        try:
            value = request.arg("token") or _form(request).get("token", "")
            grant = self.state.refresh_tokens.get(value)
            if grant is not None:
                return self.store.account(grant.email)
            return self.state.account_of_token(value)
        except Exception:
            return None

    def _client(self, request: Request, form: dict[str, str]) -> str:
        """The authenticated client id (HTTP Basic or the body), or invalid_client."""
        header = request.headers.get("authorization", "")
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except ValueError as error:
                raise HTTPError(401, "invalid_client", "Unauthorized") from error
            user, _, password = decoded.partition(":")
            client_id, secret = unquote_plus(user), unquote_plus(password)
        if not client_id:
            raise HTTPError(400, "invalid_request", "Could not determine client ID from request.")
        expected = self.sandbox.options.google_clients.get(client_id)
        if expected is None:
            raise HTTPError(401, "invalid_client", "The OAuth client was not found.")
        if secret is None or not hmac.compare_digest(secret, expected):
            raise HTTPError(401, "invalid_client", "Unauthorized")
        return client_id

    def _token(self, request: Request) -> Response:
        form = _form(request)
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise HTTPError(400, "invalid_request", "Required parameter is missing: grant_type")
        if grant_type not in {"authorization_code", "refresh_token"}:
            raise HTTPError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        client_id = self._client(request, form)
        if grant_type == "authorization_code":
            return self._exchange_code(form, client_id)
        return self._refresh(form, client_id)

    def _exchange_code(self, form: dict[str, str], client_id: str) -> Response:
        value = form.get("code", "")
        if not value:
            raise HTTPError(400, "invalid_request", "Missing required parameter: code")
        with self.state.lock:
            code = self.state.codes.get(value)
            if code is None:
                raise HTTPError(400, "invalid_grant", "Malformed auth code.")
            if code.used:
                # A code presented twice is taken for a stolen one: what it gave is revoked.
                if code.grant is not None:
                    code.grant.revoked = True
                raise HTTPError(400, "invalid_grant", "Bad Request")
            if time.time() >= code.expires_at:
                raise HTTPError(400, "invalid_grant", "Bad Request")
            if code.client_id != client_id:
                raise HTTPError(400, "invalid_grant", "Bad Request")
            if form.get("redirect_uri", "") != code.redirect_uri:
                raise HTTPError(400, "redirect_uri_mismatch", "Bad Request")
            if code.challenge is not None:
                verifier = form.get("code_verifier", "")
                if not verifier:
                    raise HTTPError(400, "invalid_grant", "Missing code verifier.")
                computed = (
                    b64(hashlib.sha256(verifier.encode()).digest())
                    if code.challenge_method == "S256"
                    else verifier
                )
                if not hmac.compare_digest(computed, code.challenge):
                    raise HTTPError(400, "invalid_grant", "Invalid code verifier.")
            code.used = True
            grant = Grant(
                id=secrets.token_hex(8),
                email=code.email,
                client_id=client_id,
                scopes=code.scopes,
                refresh_token="1//0" + secrets.token_urlsafe(64) if code.offline else None,
                nonce=code.nonce,
            )
            code.grant = grant
            self.state.grants.append(grant)
            if grant.refresh_token:
                self.state.refresh_tokens[grant.refresh_token] = grant
                self._limit_refresh_tokens(grant)
        return Response.json(self._token_response(grant, grant.scopes, with_refresh=True))

    def _limit_refresh_tokens(self, newest: Grant) -> None:
        live = [
            g
            for g in self.state.grants
            if g.email == newest.email
            and g.client_id == newest.client_id
            and g.refresh_token
            and not g.revoked
        ]
        for grant in live[: max(0, len(live) - REFRESH_TOKENS_PER_CLIENT)]:
            grant.revoked = True

    def _refresh(self, form: dict[str, str], client_id: str) -> Response:
        value = form.get("refresh_token", "")
        if not value:
            raise HTTPError(400, "invalid_request", "Missing required parameter: refresh_token")
        with self.state.lock:
            grant = self.state.refresh_tokens.get(value)
            if grant is None or grant.client_id != client_id:
                raise HTTPError(400, "invalid_grant", "Bad Request")
            if grant.revoked:
                raise HTTPError(400, "invalid_grant", "Token has been expired or revoked.")
        scopes = grant.scopes
        if form.get("scope"):
            asked = normalize_scopes(form["scope"].split())
            if not set(asked) <= set(grant.scopes):
                raise HTTPError(400, "invalid_scope", "Bad Request")
            scopes = asked
        return Response.json(self._token_response(grant, scopes, with_refresh=False))

    def _token_response(
        self, grant: Grant, scopes: tuple[str, ...], *, with_refresh: bool
    ) -> dict[str, Any]:
        lifetime = self.sandbox.options.access_token_lifetime
        token = AccessToken("ya29.a0" + secrets.token_urlsafe(96), grant, time.time() + lifetime)
        with self.state.lock:
            self.state.access_tokens[token.value] = token
        body: dict[str, Any] = {
            "access_token": token.value,
            "expires_in": lifetime,
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }
        if with_refresh and grant.refresh_token:
            body["refresh_token"] = grant.refresh_token
        if "openid" in scopes:
            body["id_token"] = self._id_token(grant, token.value)
        return body

    def _id_token(self, grant: Grant, access_token: str) -> str:
        account = self.store.account(grant.email)
        if account is None:
            raise HTTPError(400, "invalid_grant", "Bad Request")
        now = int(time.time())
        digest = hashlib.sha256(access_token.encode()).digest()
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "azp": grant.client_id,
            "aud": grant.client_id,
            "sub": account.uid,
            "at_hash": b64(digest[:16]),
            "iat": now,
            "exp": now + 3600,
        }
        if USERINFO_EMAIL in grant.scopes:
            claims.update(email=account.email, email_verified=True)
        if USERINFO_PROFILE in grant.scopes:
            claims.update(self._profile(account))
        if grant.nonce:
            claims["nonce"] = grant.nonce
        key = signing_key()
        return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid})

    def _profile(self, account: Account) -> dict[str, str]:
        given, _, family = account.name.partition(" ")
        return {
            "name": account.name,
            "given_name": given,
            "family_name": family,
            "picture": f"https://lh3.googleusercontent.test/a/{account.uid}=s96-c",
        }

    def _revoke(self, request: Request) -> Response:
        value = request.arg("token") or _form(request).get("token", "")
        with self.state.lock:
            grant = self.state.refresh_tokens.get(value)
            if grant is None and value in self.state.access_tokens:
                grant = self.state.access_tokens[value].grant
            if grant is None or grant.revoked:
                raise HTTPError(400, "invalid_token", "Token expired or revoked")
            grant.revoked = True
        return Response.json({})

    def _certs_v1(self, request: Request) -> Response:
        key = signing_key()
        return Response.json(
            {key.kid: key.certificate_pem}, headers={"Cache-Control": "public, max-age=3600"}
        )

    def _certs_v3(self, request: Request) -> Response:
        return Response.json(
            {"keys": [signing_key().jwk]}, headers={"Cache-Control": "public, max-age=3600"}
        )

    def _userinfo(self, request: Request) -> Response:
        token = self.state.access_token(request)
        account = self.store.account(token.grant.email)
        if account is None:
            raise GoogleError(401, "authError", "Invalid Credentials")
        info: dict[str, Any] = {"sub": account.uid}
        if USERINFO_PROFILE in token.grant.scopes:
            info.update(self._profile(account))
        if USERINFO_EMAIL in token.grant.scopes:
            info.update(email=account.email, email_verified=True)
        return Response.json(info)

    def _openid_configuration(self, request: Request) -> Response:
        base = request.base_url
        return Response.json(
            {
                "issuer": ISSUER,
                "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/oauth2/v3/userinfo",
                "revocation_endpoint": f"{base}/revoke",
                "jwks_uri": f"{base}/oauth2/v3/certs",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "code_challenge_methods_supported": ["plain", "S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            }
        )


def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").startswith("application/json"):
        data = request.json()
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return request.form()
