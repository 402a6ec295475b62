"""The control API: JSON routes for tests, benchmarks and the inspection page.

Counters, fault rules, and what the pages' buttons do to an account (README.md, "Control
API"). Served on both listeners, before the providers' routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.server import HTTPError, Request, Response, Router
from sandbox.store import Account

if TYPE_CHECKING:
    from sandbox.core import Sandbox


class Control:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.router = router = Router()
        router.route("GET", r"/_sandbox/api/counters", "sandbox.counters")(self.counters)
        router.route("POST", r"/_sandbox/api/counters/reset", "sandbox.counters.reset")(
            self.counters_reset
        )
        router.route("GET", r"/_sandbox/api/faults", "sandbox.faults")(self.faults)
        router.route("POST", r"/_sandbox/api/faults", "sandbox.faults.add")(self.faults_add)
        router.route("DELETE", r"/_sandbox/api/faults", "sandbox.faults.clear")(self.faults_clear)
        router.route("POST", r"/_sandbox/api/accounts/(?P<email>[^/]+)/revoke", "sandbox.revoke")(
            self.revoke
        )
        router.route(
            "POST", r"/_sandbox/api/accounts/(?P<email>[^/]+)/expire-tokens", "sandbox.expire"
        )(self.expire)
        router.route(
            "POST", r"/_sandbox/api/accounts/(?P<email>[^/]+)/invalidate-sync", "sandbox.invalidate"
        )(self.invalidate)
        router.route("GET", r"/_sandbox/api/accounts", "sandbox.accounts")(self.accounts)
        router.route(
            "POST",
            r"/_sandbox/api/accounts/(?P<email>[^/]+)/withdraw-scope",
            "sandbox.withdraw_scope",
        )(self.withdraw_scope)
        router.route(
            "PUT", r"/_sandbox/api/microsoft/apps/(?P<client>[^/]+)", "sandbox.microsoft.app"
        )(self.microsoft_app)
        router.route(
            "PUT", r"/_sandbox/api/microsoft/tenants/(?P<tenant>[^/]+)", "sandbox.microsoft.tenant"
        )(self.microsoft_tenant)

    def account_or_404(self, request: Request) -> Account:
        account = self.sandbox.store.account(request.params["email"])
        if account is None:
            raise HTTPError(404, "notFound", "no such sandbox account")
        return account

    def counters(self, request: Request) -> Response:
        return Response.json(dict(self.sandbox.counters))

    def counters_reset(self, request: Request) -> Response:
        self.sandbox.reset_counters()
        return Response(204)

    def faults(self, request: Request) -> Response:
        return Response.json([f.as_dict() for f in self.sandbox.faults])

    def faults_add(self, request: Request) -> Response:
        rule = request.json() or {}
        if not isinstance(rule, dict) or "kind" not in rule:
            raise HTTPError(400, "badRequest", "a JSON object with at least 'kind'")
        allowed = {"kind", "endpoint", "account", "times", "after", "retry_after", "delay"}
        try:
            fault = self.sandbox.add_fault(**{k: v for k, v in rule.items() if k in allowed})
        except (TypeError, ValueError) as error:
            raise HTTPError(400, "badRequest", str(error)) from error
        return Response.json(fault.as_dict(), 201)

    def faults_clear(self, request: Request) -> Response:
        self.sandbox.clear_faults()
        return Response(204)

    def revoke(self, request: Request) -> Response:
        account = self.account_or_404(request)
        self.sandbox.provider_for(account).revoke_account(account)
        return Response(204)

    def expire(self, request: Request) -> Response:
        account = self.account_or_404(request)
        self.sandbox.provider_for(account).expire_access_tokens(account)
        return Response(204)

    def invalidate(self, request: Request) -> Response:
        self.sandbox.store.invalidate_sync_state(self.account_or_404(request))
        return Response(204)

    def withdraw_scope(self, request: Request) -> Response:
        """`{"scope": "<Google scope URL>"}`: the learner takes that permission back in their
        Google account; the calls that need it get 403 insufficientPermissions."""
        account = self.account_or_404(request)
        body = self._object(request, {"scope": str})
        if account.provider != "google" or "scope" not in body:
            raise HTTPError(400, "badRequest", "a Google account and a scope")
        if not self.sandbox.google.withdraw_scope(account, str(body["scope"])):
            raise HTTPError(404, "notFound", "no grant of this account holds that scope")
        return Response(204)

    def microsoft_app(self, request: Request) -> Response:
        """An app registration's state, as its operator left it: `{"secretExpired": true}`
        makes every token request with its secret fail with invalid_client AADSTS7000222."""
        identity = self.sandbox.microsoft.identity
        client_id = request.params["client"]
        if client_id not in self.sandbox.options.outlook_clients:
            raise HTTPError(404, "notFound", "no such app registration")
        body = self._object(request, {"secretExpired": bool})
        if "secretExpired" in body:
            if body["secretExpired"]:
                identity.expired_secrets.add(client_id)
            else:
                identity.expired_secrets.discard(client_id)
        return Response.json(
            {"clientId": client_id, "secretExpired": client_id in identity.expired_secrets}
        )

    def microsoft_tenant(self, request: Request) -> Response:
        """An organisation's consent settings: `{"userConsent": false}` lets no member consent
        to an app (they meet "Need admin approval", AADSTS90094); `{"adminConsent": [ids]}` is
        the list of apps its administrator approved for everyone."""
        identity = self.sandbox.microsoft.identity
        tenant = identity.tenant(request.params["tenant"])
        if tenant is None or tenant.kind != "tenant":
            raise HTTPError(404, "notFound", "no such tenant")
        body = self._object(request, {"userConsent": bool, "adminConsent": list})
        policy = identity.policy(tenant.id)
        if "userConsent" in body:
            policy.user_consent = body["userConsent"]
        if "adminConsent" in body:
            policy.admin_consented = {str(c) for c in body["adminConsent"]}
        return Response.json(
            {
                "tenantId": tenant.id,
                "userConsent": policy.user_consent,
                "adminConsent": sorted(policy.admin_consented),
            }
        )

    @staticmethod
    def _object(request: Request, fields: dict[str, type]) -> dict[str, object]:
        body = request.json()
        if not isinstance(body, dict) or any(
            k not in fields or not isinstance(v, fields[k]) for k, v in body.items()
        ):
            expected = ", ".join(f"{k} ({t.__name__})" for k, t in fields.items())
            raise HTTPError(400, "badRequest", f"a JSON object with some of: {expected}")
        return body

    def accounts(self, request: Request) -> Response:
        return Response.json(
            [
                {
                    "provider": a.provider,
                    "email": a.email,
                    "name": a.name,
                    "calendars": [
                        {
                            "id": c.id,
                            "name": c.name,
                            "primary": c.primary,
                            "canEdit": c.can_edit,
                            "events": sum(not e.deleted for e in c.events.values()),
                        }
                        for c in a.calendars.values()
                    ],
                }
                for a in self.sandbox.store.accounts.values()
            ]
        )
