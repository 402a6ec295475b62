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
        allowed = {"kind", "endpoint", "account", "times", "retry_after", "delay"}
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
