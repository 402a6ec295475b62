"""The sign-in and consent pages a browser opens, and the codes they issue.

https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow. Served from the
plain HTTP listener, so that a browser never meets the sandbox's certificate; errors are pages.
The sandbox keeps no sign-in session: every authorization shows the account chooser, and
prompt=none answers login_required.
"""

from __future__ import annotations

import html
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlencode, urlsplit

from sandbox.microsoft.errors import aadsts
from sandbox.microsoft.formats import with_query
from sandbox.microsoft.identity import OIDC_SCOPES, Code, Grant, Identity, Tenant, client_info_of
from sandbox.server import HTTPError, Request, Response, Router
from sandbox.store import CONSUMERS_TENANT_ID, MICROSOFT, Account

if TYPE_CHECKING:
    from sandbox.core import Sandbox


PERMISSION_TEXT = {
    "openid": "Sign you in",
    "profile": "View your basic profile",
    "email": "View your email address",
    "offline_access": "Maintain access to data you have given it access to",
    "User.Read": "Sign you in and read your profile",
    "User.ReadBasic.All": "Read all users' basic profiles",
    "Calendars.Read": "Read your calendars",
    "Calendars.ReadWrite": "Have full access to your calendars",
    "Calendars.Read.Shared": "Read calendars you can access",
    "Calendars.ReadWrite.Shared": "Read and write calendars you can access",
    "MailboxSettings.Read": "Read your mailbox settings",
}

PENDING_LIFETIME = 600  # seconds an open consent page stays usable

RESPONSE_MODES = {"query", "fragment", "form_post"}


@dataclass
class _AuthRequest:
    tenant: Tenant
    client_id: str
    redirect_uri: str
    response_mode: str
    state: str | None
    nonce: str | None
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str
    client_info: bool
    login_hint: str | None
    created: float = field(default_factory=time.time)
    needs_approval: bool = False  # the organisation's "Need admin approval" page was shown


class SignIn:
    def __init__(self, sandbox: Sandbox, identity: Identity, lock: threading.RLock) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self.identity = identity
        self._lock = lock
        self._pending: dict[str, _AuthRequest] = {}
        self.router = router = Router(errors=self._html_error)
        tenant_path = r"/(?P<tenant>[^/]+)"
        authorize_path = tenant_path + r"/oauth2/v2\.0/authorize"
        router.route("GET", authorize_path, "microsoft.authorize")(self._authorize)
        router.route("POST", authorize_path, "microsoft.authorize")(self._consent)
        router.route("GET", tenant_path + r"/oauth2/v2\.0/logout", "microsoft.logout")(self._logout)

    def _authorize(self, request: Request) -> Response:
        """The page a browser opens: https://learn.microsoft.com/entra/identity-platform/
        v2-oauth2-auth-code-flow#request-an-authorization-code"""
        tenant = self.identity.tenant(request.params["tenant"])
        if tenant is None:
            name = unquote(request.params["tenant"])
            raise HTTPError(400, "invalid_tenant", aadsts(90002, tenant=name))
        client_id = request.arg("client_id") or ""
        if not client_id:
            raise HTTPError(400, "invalid_request", aadsts(900144, name="client_id"))
        if client_id not in self.sandbox.options.outlook_clients:
            text = aadsts(700016, client=client_id, tenant=tenant.segment)
            raise HTTPError(400, "unauthorized_client", text)
        redirect_uri = request.arg("redirect_uri") or ""
        parts = urlsplit(redirect_uri)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.fragment:
            raise HTTPError(
                400, "invalid_request", aadsts(50011, uri=redirect_uri, client=client_id)
            )
        mode = request.arg("response_mode") or "query"
        state = request.arg("state")

        def refuse(error: str, description: str) -> Response:
            params = {"error": error, "error_description": description, "state": state}
            return _redirect_result(
                redirect_uri, mode if mode in RESPONSE_MODES else "query", params
            )

        if mode not in RESPONSE_MODES:
            return refuse("invalid_request", aadsts(900144, name="response_mode"))
        response_type = request.arg("response_type") or ""
        if response_type != "code":
            text = aadsts(700054, response_type=response_type)
            return refuse("unsupported_response_type", text)
        scopes, unknown = self.identity.scopes(request.arg("scope") or "")
        if not scopes and not unknown:
            return refuse("invalid_request", aadsts(900144, name="scope"))
        if unknown:
            return refuse("invalid_scope", aadsts(70011, scope=" ".join(unknown)))
        challenge = request.arg("code_challenge")
        method = request.arg("code_challenge_method") or "plain"
        if challenge is not None and method not in {"S256", "plain"}:
            return refuse("invalid_request", aadsts(900144, name="code_challenge_method"))
        if challenge is not None and not 43 <= len(challenge) <= 128:
            return refuse("invalid_request", aadsts(501491))
        if request.arg("prompt") == "none":  # the sandbox keeps no sign-in session
            return refuse("login_required", aadsts(50058))
        pending = _AuthRequest(
            tenant=tenant,
            client_id=client_id,
            redirect_uri=redirect_uri,
            response_mode=mode,
            state=state,
            nonce=request.arg("nonce"),
            scopes=scopes,
            code_challenge=challenge,
            code_challenge_method=method,
            client_info=request.arg("client_info") == "1",
            login_hint=(request.arg("login_hint") or "").lower() or None,
        )
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            now = time.time()
            for key in [k for k, v in self._pending.items() if v.created < now - PENDING_LIFETIME]:
                del self._pending[key]
            self._pending[request_id] = pending
        accounts = [a for a in self.store.accounts_of(MICROSOFT) if tenant.allows(a)]
        return Response.html(_consent_page(request.path, request_id, pending, accounts))

    def _consent(self, request: Request) -> Response:
        """The consent form, posted: back to the app with a code, or with access_denied."""
        form = request.form()
        with self._lock:
            pending = self._pending.pop(form.get("request", ""), None)
        if pending is None or pending.created < time.time() - PENDING_LIFETIME:
            raise HTTPError(400, "invalid_request", aadsts(90014))
        redirect, mode = pending.redirect_uri, pending.response_mode
        action = form.get("action")
        if action == "cancel":
            refusal = {"error": "access_denied", "error_description": aadsts(65004)}
            return _redirect_result(redirect, mode, {**refusal, "state": pending.state})
        if action == "back" and pending.needs_approval:
            # "Return to the application without granting consent" on the approval page.
            refusal = {
                "error": "access_denied",
                "error_description": aadsts(90094, client=pending.client_id),
            }
            return _redirect_result(redirect, mode, {**refusal, "state": pending.state})
        if action != "accept" or pending.needs_approval:
            raise HTTPError(400, "invalid_request", "Choose Accept or Cancel.")
        email = form.get("account", "")
        account = self.store.account(email) if email else None
        if account is None or not pending.tenant.allows(account):
            text = aadsts(50020, email=email, tenant=pending.tenant.segment)
            raise HTTPError(400, "invalid_request", text)
        graph_scopes = {s for s in pending.scopes if s not in OIDC_SCOPES}
        with self._lock:
            existing = self._grant_of(account, pending.client_id)
        consented = existing is not None and graph_scopes <= existing.scopes
        if not consented and self.identity.needs_admin_approval(account, pending.client_id):
            return self._approval_page(request.path, pending)
        with self._lock:
            grant = self._grant_of(account, pending.client_id)
            if grant is None:
                grant = Grant(str(uuid.uuid4()), account.email, pending.client_id, set())
                self.identity.grants[grant.id] = grant
            grant.scopes |= graph_scopes  # consent adds up, as in Entra ID
            code = "1.A" + secrets.token_urlsafe(96)
            self.identity.codes[code] = Code(
                grant_id=grant.id,
                email=account.email,
                client_id=pending.client_id,
                redirect_uri=pending.redirect_uri,
                scopes=pending.scopes,
                nonce=pending.nonce,
                code_challenge=pending.code_challenge,
                code_challenge_method=pending.code_challenge_method,
                expires=time.time() + self.sandbox.options.code_lifetime,
            )
        params: dict[str, str | None] = {"code": code}
        if pending.client_info:
            params["client_info"] = client_info_of(account)
        params["state"] = pending.state
        params["session_state"] = str(uuid.uuid4())
        return _redirect_result(redirect, mode, params)

    def _grant_of(self, account: Account, client_id: str) -> Grant | None:
        return next(
            (
                g
                for g in self.identity.grants.values()
                if g.email == account.email and g.client_id == client_id and not g.revoked
            ),
            None,
        )

    def _approval_page(self, action: str, pending: _AuthRequest) -> Response:
        """Entra's "Need admin approval" page (AADSTS90094), shown when the organisation lets
        no member consent and the admin consent workflow is off: the only way on is back to
        the application, without a code."""
        pending.needs_approval = True
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            self._pending[request_id] = pending
        e = html.escape
        return Response.html(
            _page(
                "Need admin approval",
                "<h1>Need admin approval</h1>"
                f'<p id="error-message" role="alert">{e(aadsts(90094, client=pending.client_id))}'
                "</p>"
                f'<form method="post" action="{e(action)}" id="approval">'
                f'<input type="hidden" name="request" value="{e(request_id)}">'
                '<div class="actions"><button type="submit" name="action" value="back" id="back">'
                "Return to the application without granting consent</button></div></form>",
            )
        )

    def _logout(self, request: Request) -> Response:
        target = request.arg("post_logout_redirect_uri")
        if target and urlsplit(target).scheme in {"http", "https"}:
            return Response.redirect(target)
        return Response.html(_page("Signed out", "<h1>You signed out of your account</h1>"))

    def _html_error(self, error: HTTPError) -> Response:
        if error.reason in {"rateLimitExceeded", "quotaExceeded", "backendError", "authError"}:
            message = aadsts(90033)
        else:
            message = error.message
        page = _page(
            "Sign in to your account",
            "<h1>Sorry, but we’re having trouble signing you in.</h1>"
            f'<p id="error-message" role="alert">{html.escape(message)}</p>',
        )
        response = Response.html(page, error.status)
        response.headers.update(error.headers)
        return response


def _redirect_result(uri: str, mode: str, params: dict[str, str | None]) -> Response:
    values = {k: v for k, v in params.items() if v is not None}
    if mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in values.items()
        )
        return Response.html(
            _page(
                "Working…",
                f'<form method="post" action="{html.escape(uri)}" id="response">{fields}'
                "<noscript><p>Script is disabled. Click Submit to continue.</p>"
                '<button type="submit">Submit</button></noscript></form>'
                "<script>document.getElementById('response').submit()</script>",
            )
        )
    if mode == "fragment":
        return Response.redirect(f"{uri.split('#')[0]}#{urlencode(values)}")
    return Response.redirect(with_query(uri, values))


_STYLE = """
body{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;color:#1b1b1b;margin:0}
main{max-width:30rem;margin:3rem auto;background:#fff;padding:2rem 2.5rem;
box-shadow:0 2px 6px rgba(0,0,0,.2)}
.brand{font-weight:600;color:#5e5e5e;margin:0 0 1rem}
h1{font-size:1.5rem;font-weight:600;margin:0 0 1rem}
h2{font-size:1rem;margin:1.5rem 0 .5rem}
fieldset{border:0;padding:0;margin:0}
legend{font-weight:600;margin-bottom:.5rem}
.account{display:flex;gap:.75rem;align-items:center;padding:.6rem;border:1px solid #ccc;
margin:.4rem 0}
.account:focus-within{outline:3px solid #0067b8}
.account small{display:block;color:#505050}
.actions{display:flex;gap:.75rem;justify-content:flex-end;margin-top:1.5rem}
button{font:inherit;padding:.5rem 1.5rem;border:1px solid #8a8a8a;background:#ccc;cursor:pointer}
button:focus{outline:3px solid #0067b8;outline-offset:2px}
#accept{background:#0067b8;border-color:#0067b8;color:#fff}
code{font-size:.9em}
"""


def _page(title: str, content: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} — Microsoft (sandbox)</title><style>{_STYLE}</style>"
        f'</head><body><main><p class="brand">Microsoft (sandbox)</p>{content}</main>'
        "</body></html>"
    )


def _account_id(email: str) -> str:
    return "account-" + re.sub(r"[^a-z0-9]+", "-", email.lower()).strip("-")


def _consent_page(
    action: str, request_id: str, pending: _AuthRequest, accounts: list[Account]
) -> str:
    e = html.escape
    host = urlsplit(pending.redirect_uri).netloc
    chosen = (
        pending.login_hint
        if any(a.email == pending.login_hint for a in accounts)
        else (accounts[0].email if accounts else None)
    )
    choices = []
    for account in accounts:
        kind = (
            "Personal account"
            if account.tenant_id == CONSUMERS_TENANT_ID
            else "Work or school account"
        )
        checked = " checked" if account.email == chosen else ""
        ident = _account_id(account.email)
        choices.append(
            f'<div class="account"><input type="radio" name="account" id="{ident}" '
            f'value="{e(account.email)}"{checked}><label for="{ident}">{e(account.name)}'
            f" <small>{e(account.email)}</small> <small>{kind}</small></label></div>"
        )
    if choices:
        chooser = (
            '<fieldset id="accounts"><legend>Pick an account</legend>'
            + "".join(choices)
            + "</fieldset>"
        )
    else:
        chooser = '<p id="no-accounts">No sandbox account can sign in to this tenant.</p>'
    permissions = "".join(
        f"<li>{e(PERMISSION_TEXT.get(s, s))} <small>(<code>{e(s)}</code>)</small></li>"
        for s in pending.scopes
    )
    accept = (
        '<button type="submit" name="action" value="accept" id="accept">Accept</button>'
        if accounts
        else ""
    )
    return _page(
        "Permissions requested",
        "<h1>Permissions requested</h1>"
        f"<p>The application <code>{e(pending.client_id)}</code> will be able to:</p>"
        f'<ul id="permissions">{permissions}</ul>'
        f'<form method="post" action="{e(action)}" id="consent">'
        f'<input type="hidden" name="request" value="{e(request_id)}">{chooser}'
        "<p>Accepting these permissions means that you allow this app to use your data as "
        f"specified in their terms of service. You will be sent back to <strong>{e(host)}"
        "</strong>.</p>"
        '<div class="actions"><button type="submit" name="action" value="cancel" id="cancel">'
        f"Cancel</button>{accept}</div></form>",
    )
