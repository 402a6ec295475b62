"""The authorization endpoint: the consent page a browser opens, and the codes it issues.

https://developers.google.com/identity/protocols/oauth2/web-server: codes bound to PKCE, at
most one refresh token per consent, prompt=none for an account that already consented,
include_granted_scopes. Errors of the page are pages, as at accounts.google.com.
"""

from __future__ import annotations

import html
import re
import secrets
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

from sandbox.google.discovery import discovery
from sandbox.google.oauth import (
    IDENTITY_SCOPES,
    ISSUER,
    SCOPE_ALIASES,
    AuthCode,
    OAuthState,
    normalize_scopes,
)
from sandbox.server import HTTPError, Request, Response, Router
from sandbox.store import GOOGLE, Account

if TYPE_CHECKING:
    from sandbox.core import Sandbox


AUTH_PARAMETERS = {
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "access_type",
    "prompt",
    "login_hint",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "include_granted_scopes",
    "enable_granular_consent",
    "hd",
    "authuser",
}


@dataclass
class AuthRequest:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    offline: bool
    prompt: set[str]
    login_hint: str
    challenge: str | None
    challenge_method: str
    nonce: str | None
    include_granted: bool
    raw: dict[str, str]


def page_error(error: HTTPError) -> Response:
    """Errors of the consent page are pages, as at accounts.google.com."""
    response = Response.html(
        _page(
            "Access blocked: authorization error",
            f"<h1>Access blocked: authorization error</h1>"
            f'<p id="error-message">{html.escape(error.message)}</p>'
            f'<p id="error-code">Error {error.status}: {html.escape(error.reason)}</p>',
        ),
        error.status,
    )
    response.headers.update(error.headers)
    return response


class Authorization:
    def __init__(self, sandbox: Sandbox, state: OAuthState, router: Router) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.state = state
        router.route("GET", r"/o/oauth2/v2/auth", "google.auth", identify=self._identify_auth)(
            self._auth_get
        )
        router.route("POST", r"/o/oauth2/v2/auth", "google.auth", identify=self._identify_auth)(
            self._auth_post
        )

    def _identify_auth(self, request: Request) -> Account | None:
        try:
            source = request.form() if request.method == "POST" else {}
            email = source.get("account") or request.arg("login_hint") or ""
            return self.store.account(email) if email else None
        except Exception:
            return None

    def _auth_request(self, source: dict[str, str]) -> AuthRequest:
        """The authorization request's parameters, checked as Google checks them."""
        for name in source:
            if name not in AUTH_PARAMETERS:
                raise HTTPError(
                    400, "invalid_request", f"Parameter not allowed for this message type: {name}"
                )
        client_id = source.get("client_id", "")
        if not client_id:
            raise HTTPError(400, "invalid_request", "Missing required parameter: client_id")
        if client_id not in self.sandbox.options.google_clients:
            raise HTTPError(400, "invalid_client", "The OAuth client was not found.")
        redirect_uri = source.get("redirect_uri", "")
        if not redirect_uri:
            raise HTTPError(400, "invalid_request", "Missing required parameter: redirect_uri")
        parts = urlsplit(redirect_uri)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.fragment:
            raise HTTPError(
                400,
                "redirect_uri_mismatch",
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 "
                "policy: the redirect URI must be an absolute http(s) URI without a fragment.",
            )
        response_type = source.get("response_type", "")
        if not response_type:
            raise HTTPError(400, "invalid_request", "Missing required parameter: response_type")
        if response_type != "code":
            raise HTTPError(
                400,
                "unsupported_response_type",
                f"The sandbox only issues authorization codes, not {response_type!r}.",
            )
        requested = source.get("scope", "").split()
        if not requested:
            raise HTTPError(400, "invalid_request", "Missing required parameter: scope")
        known = set(IDENTITY_SCOPES) | set(discovery()["auth"]["oauth2"]["scopes"])
        unknown = [s for s in requested if SCOPE_ALIASES.get(s, s) not in known]
        if unknown:
            raise HTTPError(
                400,
                "invalid_scope",
                f"Some requested scopes were invalid. {{invalid=[{', '.join(unknown)}]}}",
            )
        access_type = source.get("access_type", "online")
        if access_type not in {"online", "offline"}:
            raise HTTPError(400, "invalid_request", f"Invalid access_type: {access_type}")
        prompt = set(source.get("prompt", "").split())
        if not prompt <= {"none", "consent", "select_account"} or (
            "none" in prompt and len(prompt) > 1
        ):
            raise HTTPError(400, "invalid_request", f"Invalid prompt: {source.get('prompt')}")
        challenge = source.get("code_challenge") or None
        method = source.get("code_challenge_method") or ("plain" if challenge else "")
        if method and not challenge:
            raise HTTPError(400, "invalid_request", "Missing code_challenge.")
        if challenge and method not in {"S256", "plain"}:
            raise HTTPError(400, "invalid_request", "Invalid code_challenge_method.")
        if challenge and not re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", challenge):
            raise HTTPError(400, "invalid_request", "Invalid code_challenge.")
        return AuthRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=normalize_scopes(requested),
            state=source.get("state"),
            offline=access_type == "offline",
            prompt=prompt,
            login_hint=source.get("login_hint", ""),
            challenge=challenge,
            challenge_method=method,
            nonce=source.get("nonce") or None,
            include_granted=source.get("include_granted_scopes") == "true",
            raw={k: v for k, v in source.items() if k in AUTH_PARAMETERS},
        )

    def _auth_get(self, request: Request) -> Response:
        auth = self._auth_request({k: v[-1] for k, v in request.query.items()})
        if "none" in auth.prompt:
            return self._auth_silently(auth)
        return Response.html(self._consent_page(auth))

    def _auth_post(self, request: Request) -> Response:
        form = request.form()
        decision = form.pop("decision", "")
        email = form.pop("account", "")
        form.pop("grant", None)
        ticked = parse_qs(request.body.decode("utf-8", errors="replace")).get("grant", [])
        auth = self._auth_request(form)
        if decision == "deny":
            return _redirect(auth.redirect_uri, error="access_denied", state=auth.state)
        if decision != "allow":
            return Response.html(self._consent_page(auth, "Choose Allow or Deny."), 400)
        account = self.store.account(email) if email else None
        if account is None or account.provider != GOOGLE:
            return Response.html(self._consent_page(auth, "Choose an account."), 400)
        if _granular(auth):
            # Granular consent: the sign-in scopes go with the account, each other scope only
            # if its box was left ticked.
            granted = tuple(s for s in auth.scopes if s in IDENTITY_SCOPES or s in ticked)
            auth = replace(auth, scopes=granted)
        return self._issue_code(auth, account)

    def _auth_silently(self, auth: AuthRequest) -> Response:
        """prompt=none: a code only for an account that already granted these scopes."""
        account = self.store.account(auth.login_hint) if auth.login_hint else None
        if account is None:
            return _redirect(auth.redirect_uri, error="interaction_required", state=auth.state)
        if not set(auth.scopes) <= self.state.granted_scopes(account.email, auth.client_id):
            return _redirect(auth.redirect_uri, error="consent_required", state=auth.state)
        return self._issue_code(auth, account)

    def _issue_code(self, auth: AuthRequest, account: Account) -> Response:
        scopes = set(auth.scopes)
        if auth.include_granted:
            scopes |= self.state.granted_scopes(account.email, auth.client_id)
        with self.state.lock:
            # Google issues a refresh token on the first consent only, unless prompt=consent.
            has_refresh = any(
                g.email == account.email
                and g.client_id == auth.client_id
                and g.refresh_token
                and not g.revoked
                for g in self.state.grants
            )
            code = AuthCode(
                value="4/0A" + secrets.token_urlsafe(48),
                client_id=auth.client_id,
                redirect_uri=auth.redirect_uri,
                email=account.email,
                scopes=tuple(sorted(scopes)),
                challenge=auth.challenge,
                challenge_method=auth.challenge_method,
                offline=auth.offline and ("consent" in auth.prompt or not has_refresh),
                nonce=auth.nonce,
                expires_at=time.time() + self.sandbox.options.code_lifetime,
            )
            self.state.codes[code.value] = code
        return _redirect(
            auth.redirect_uri,
            state=auth.state,
            iss=ISSUER,
            code=code.value,
            scope=" ".join(code.scopes),
            authuser="0",
            prompt="consent",
        )

    def _consent_page(self, auth: AuthRequest, problem: str = "") -> str:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in auth.raw.items()
        )
        accounts = []
        for index, account in enumerate(self.store.accounts_of(GOOGLE)):
            checked = " checked" if account.email == auth.login_hint.lower() else ""
            accounts.append(
                f'<div class="choice"><input type="radio" name="account" id="account-{index}" '
                f'value="{html.escape(account.email)}" required{checked}> '
                f'<label for="account-{index}">{html.escape(account.name)} '
                f'<span class="email">{html.escape(account.email)}</span></label></div>'
            )
        descriptions = {
            **{k: v["description"] for k, v in discovery()["auth"]["oauth2"]["scopes"].items()},
            **IDENTITY_SCOPES,
        }
        if _granular(auth):
            # One box per scope beyond signing in, ticked; the learner may untick any
            # (https://developers.google.com/identity/protocols/oauth2/resources/
            # granular-permissions).
            scopes = "".join(
                f"<li>{html.escape(descriptions.get(s, s))} <code>{html.escape(s)}</code></li>"
                if s in IDENTITY_SCOPES
                else f'<li><input type="checkbox" name="grant" id="grant-{i}" '
                f'value="{html.escape(s)}" checked> <label for="grant-{i}">'
                f'<span class="scope-text">{html.escape(descriptions.get(s, s))}</span> '
                f"<code>{html.escape(s)}</code></label></li>"
                for i, s in enumerate(auth.scopes)
            )
        else:
            scopes = "".join(
                f'<li><span class="scope-text">{html.escape(descriptions.get(s, s))}</span> '
                f"<code>{html.escape(s)}</code></li>"
                for s in auth.scopes
            )
        alert = f'<p role="alert" id="problem">{html.escape(problem)}</p>' if problem else ""
        body = (
            f"<h1>Sign in with Google (sandbox)</h1>"
            f'<p>to continue to <strong id="client">{html.escape(auth.client_id)}</strong>, '
            f"which will return you to <code>{html.escape(auth.redirect_uri)}</code></p>"
            f"{alert}"
            f'<form method="post" action="/o/oauth2/v2/auth" id="consent">{hidden}'
            f"<fieldset><legend>Choose an account</legend>{''.join(accounts)}</fieldset>"
            f'<h2 id="scopes-heading">This app wants to</h2>'
            f'<ul id="scopes" aria-labelledby="scopes-heading">{scopes}</ul>'
            f'<div class="buttons">'
            f'<button type="submit" name="decision" value="deny" id="deny" formnovalidate>'
            f"Deny</button> "
            f'<button type="submit" name="decision" value="allow" id="allow">Allow</button>'
            f"</div></form>"
        )
        return _page("Sign in - Google Accounts (sandbox)", body)


def _granular(auth: AuthRequest) -> bool:
    """Google shows one box per scope when more than one scope beyond signing in is asked."""
    return sum(s not in IDENTITY_SCOPES for s in auth.scopes) > 1


def _redirect(uri: str, **params: str | None) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if urlsplit(uri).query else ("" if uri.endswith("?") else "?")
    return Response.redirect(f"{uri}{separator}{query}")


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;"
        "color:#202124}fieldset{border:1px solid #dadce0;border-radius:8px;padding:1rem}"
        ".choice{margin:.5rem 0}.email{color:#5f6368;margin-left:.25rem}"
        "button{font:inherit;padding:.5rem 1.5rem;margin-right:.5rem;border-radius:4px}"
        "#allow{background:#1a73e8;color:#fff;border:0}[role=alert]{color:#b3261e}"
        f"</style></head><body><main>{body}</main></body></html>"
    )
