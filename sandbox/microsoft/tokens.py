"""The token endpoint, the signing keys and the OpenID configuration of the identity platform.

https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow and
https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc. Errors come in OAuth's
JSON shape with AADSTS codes, as Entra ID words them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sandbox.microsoft.errors import ROTATED, OAuthError, aadsts, invalid_grant
from sandbox.microsoft.formats import b64url
from sandbox.microsoft.identity import OIDC_SCOPES, Grant, Identity, Tenant
from sandbox.microsoft.signin import RESPONSE_MODES
from sandbox.server import HTTPError, Request, Response, Router
from sandbox.store import CONSUMERS_TENANT_ID, Account

if TYPE_CHECKING:
    from sandbox.core import Sandbox


class TokenEndpoint:
    def __init__(self, sandbox: Sandbox, identity: Identity, lock: threading.RLock) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.identity = identity
        self._lock = lock
        self.router = router = Router(errors=self._oauth_error)
        tenant_path = r"/(?P<tenant>[^/]+)"
        router.route(
            "GET", tenant_path + r"/v2\.0/\.well-known/openid-configuration", "microsoft.openid"
        )(self.openid_configuration)
        router.route("GET", tenant_path + r"/discovery/v2\.0/keys", "microsoft.keys")(self.keys)
        router.route(
            "POST",
            tenant_path + r"/oauth2/v2\.0/token",
            "microsoft.token",
            identify=self._identify_token_request,
        )(self.token)

    def _tenant_or_error(self, request: Request) -> Tenant:
        tenant = self.identity.tenant(request.params["tenant"])
        if tenant is None:
            name = unquote(request.params["tenant"])
            raise OAuthError(400, "invalid_tenant", aadsts(90002, tenant=name))
        return tenant

    def openid_configuration(self, request: Request) -> Response:
        """https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc"""
        tenant = self._tenant_or_error(request)
        https, plain, segment = self.sandbox.https_url, self.sandbox.http_url, tenant.segment
        issuer_tenant = {
            "common": "{tenantid}",
            "organizations": "{tenantid}",
            "consumers": CONSUMERS_TENANT_ID,
        }.get(tenant.kind, tenant.id)
        claims = "sub iss aud exp iat auth_time acr nonce preferred_username name tid ver"
        return Response.json(
            {
                "token_endpoint": f"{https}/{segment}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{https}/{segment}/discovery/v2.0/keys",
                "response_modes_supported": sorted(RESPONSE_MODES),
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{https}/{issuer_tenant}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{https}/oidc/userinfo",
                # What a browser opens is on plain HTTP: no certificate to trust.
                "authorization_endpoint": f"{plain}/{segment}/oauth2/v2.0/authorize",
                "end_session_endpoint": f"{plain}/{segment}/oauth2/v2.0/logout",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "claims_supported": [*claims.split(), "email"],
                "tenant_region_scope": "EU" if tenant.kind == "tenant" else None,
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": urlsplit(https).netloc,
                "rbac_url": "https://pas.windows.net",
            }
        )

    def keys(self, request: Request) -> Response:
        self._tenant_or_error(request)
        public = self.identity.key().public_key().public_numbers()
        size = (public.n.bit_length() + 7) // 8
        key = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.identity.kid,
            "x5t": self.identity.kid,
            "n": b64url(public.n.to_bytes(size, "big")),
            "e": b64url(public.e.to_bytes(3, "big")),
            "alg": "RS256",
            "issuer": f"{self.sandbox.https_url}/{{tenantid}}/v2.0",
        }
        return Response.json({"keys": [key]})

    def token(self, request: Request) -> Response:
        """https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow"""
        tenant = self._tenant_or_error(request)
        form = request.form()
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):  # RFC 6749 2.3.1, the other way to send it
            try:
                raw = base64.b64decode(basic[6:].strip(), validate=True)
                user, _, password = raw.decode().partition(":")
                client_id, secret = unquote(user.replace("+", " ")), unquote(password)
            except (ValueError, UnicodeDecodeError):
                pass
        if not client_id:
            raise OAuthError(400, "invalid_request", aadsts(900144, name="client_id"))
        expected = self.sandbox.options.outlook_clients.get(client_id)
        if expected is None:
            text = aadsts(700016, client=client_id, tenant=tenant.segment)
            raise OAuthError(400, "unauthorized_client", text)
        if not secret:
            raise OAuthError(401, "invalid_client", aadsts(7000218))
        if not hmac.compare_digest(secret.encode(), expected.encode()):
            raise OAuthError(401, "invalid_client", aadsts(7000215, client=client_id))
        if client_id in self.identity.expired_secrets:
            raise OAuthError(401, "invalid_client", aadsts(7000222, client=client_id))
        grant_type = form.get("grant_type", "")
        client_info = form.get("client_info") == "1"
        if grant_type == "authorization_code":
            body = self._redeem_code(tenant, client_id, form, client_info)
        elif grant_type == "refresh_token":
            body = self._redeem_refresh_token(tenant, client_id, form, client_info)
        elif not grant_type:
            raise OAuthError(400, "invalid_request", aadsts(900144, name="grant_type"))
        else:
            text = aadsts(70003, grant_type=grant_type)
            raise OAuthError(400, "unsupported_grant_type", text)
        response = Response.json(body)
        response.headers["Cache-Control"] = "no-store, no-cache"
        return response

    def _identify_token_request(self, request: Request) -> Account | None:
        try:
            form = request.form()
            with self._lock:
                record: Any = None
                if form.get("refresh_token"):
                    record = self.identity.refresh_tokens.get(form["refresh_token"])
                elif form.get("code"):
                    record = self.identity.codes.get(form["code"])
            return self.store.account(record.email) if record is not None else None
        except Exception:  # identify must never raise
            return None

    def _redeem_code(
        self, tenant: Tenant, client_id: str, form: dict[str, str], client_info: bool
    ) -> dict[str, Any]:
        code = form.get("code", "")
        if not code:
            raise OAuthError(400, "invalid_request", aadsts(900144, name="code"))
        with self._lock:
            record = self.identity.codes.get(code)
            if record is None:
                raise invalid_grant(9002313)
            if record.used:
                raise invalid_grant(54005)
            record.used = True  # single use, whatever happens next
            grant = self.identity.grants.get(record.grant_id)
        if record.expires < time.time():
            raise invalid_grant(70008)
        if record.client_id != client_id:
            raise invalid_grant(70000, parameter="code", why="it was issued to another app.")
        redirect_uri = form.get("redirect_uri", "")
        if redirect_uri != record.redirect_uri:
            raise invalid_grant(500112, given=redirect_uri, expected=record.redirect_uri)
        if record.code_challenge:
            verifier = form.get("code_verifier", "")
            if not verifier:
                raise invalid_grant(50148)
            computed = (
                b64url(hashlib.sha256(verifier.encode()).digest())
                if record.code_challenge_method == "S256"
                else verifier
            )
            if not hmac.compare_digest(computed.encode(), record.code_challenge.encode()):
                raise invalid_grant(501481)
        account = self.store.account(record.email)
        if account is None or not tenant.allows(account):
            raise invalid_grant(50020, email=record.email, tenant=tenant.segment)
        if grant is None or grant.revoked:
            raise invalid_grant(50173, issued=_issued(grant))
        return self.identity.issue(
            grant, record.scopes, nonce=record.nonce, client_info=client_info
        )

    def _redeem_refresh_token(
        self, tenant: Tenant, client_id: str, form: dict[str, str], client_info: bool
    ) -> dict[str, Any]:
        token = form.get("refresh_token", "")
        if not token:
            raise OAuthError(400, "invalid_request", aadsts(900144, name="refresh_token"))
        requested, unknown = self.identity.scopes(form.get("scope", ""))
        if unknown:
            raise OAuthError(400, "invalid_scope", aadsts(70011, scope=" ".join(unknown)))
        with self._lock:
            record = self.identity.refresh_tokens.get(token)
            if record is None:
                why = self.identity.spent_refresh_tokens.get(token)
                if why == "revoked":
                    raise invalid_grant(50173, issued="")
                if why == "rotated":
                    raise invalid_grant(70000, parameter="refresh_token", why=ROTATED)
                if why == "expired":
                    raise invalid_grant(700082, issued="")
                raise invalid_grant(9002313)
            grant = self.identity.grants.get(record.grant_id)
            if record.client_id != client_id:
                why = "it was issued to another app."
                raise invalid_grant(70000, parameter="refresh_token", why=why)
            if record.expires < time.time():
                del self.identity.refresh_tokens[token]
                self.identity.spend(token, "expired")
                raise invalid_grant(700082, issued=f" It was issued on {record.issued:%Y-%m-%d}.")
            if grant is None or grant.revoked:
                raise invalid_grant(50173, issued=_issued(grant))
            account = self.store.account(record.email)
            if account is None or not tenant.allows(account):
                raise invalid_grant(50020, email=record.email, tenant=tenant.segment)
            if [s for s in requested if s not in OIDC_SCOPES and s not in grant.scopes]:
                text = aadsts(65001, client=client_id)
                raise OAuthError(400, "invalid_grant", text, suberror="consent_required")
            # Rotation: a new refresh token comes with every answer. Entra leaves the one just
            # used valid, so a client whose answer was lost can still refresh; in strict mode it
            # is gone for good.
            if self.sandbox.options.strict_refresh_rotation:
                del self.identity.refresh_tokens[token]
                self.identity.spend(token, "rotated")
        if not requested:
            requested = [*sorted(grant.scopes), "offline_access"]
        return self.identity.issue(grant, requested, nonce=None, client_info=client_info)

    def _oauth_error(self, error: HTTPError) -> Response:
        status, code, description = error.status, error.reason, error.message
        headers = dict(error.headers)
        if code in {"rateLimitExceeded", "quotaExceeded"}:
            status, code = 429, "temporarily_unavailable"
            description = aadsts(90055)
            headers.setdefault("Retry-After", "1")
        elif code == "backendError":
            code = "server_error" if status == 500 else "temporarily_unavailable"
            description = aadsts(90033)
        elif code == "authError":
            status, code = 401, "invalid_client"
            description = aadsts(7000215, client="")
        elif code in {"notFound", "badRequest", "methodNotAllowed"}:
            code = "invalid_request"
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        codes = [int(c) for c in re.findall(r"AADSTS(\d+)", description)[:1]]
        body: dict[str, Any] = {
            "error": code,
            "error_description": f"{description} Trace ID: {trace} "
            f"Correlation ID: {correlation} Timestamp: {stamp}",
            "error_codes": codes,
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
        }
        if codes:
            body["error_uri"] = f"{self.sandbox.https_url}/error?code={codes[0]}"
        suberror = getattr(error, "suberror", "")
        if suberror:
            body["suberror"] = suberror
        response = Response.json(body, status)
        response.headers.update(headers)
        response.headers["Cache-Control"] = "no-store, no-cache"
        return response


def _issued(grant: Grant | None) -> str:
    return f" The grant was issued on '{grant.created:%Y-%m-%dT%H:%M:%S}Z'." if grant else ""
