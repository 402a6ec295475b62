"""The Calendar API's requests: authenticated, validated, then handed to a handler as a `Call`.

Every method of the discovery document has a route (provider.py); each request is checked
against its method's parameters and scopes, and the methods the sandbox does not emulate
answer 501. https://developers.google.com/calendar/api/v3/reference
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.google.discovery import FieldSelector, Method, validate
from sandbox.google.errors import GoogleError, invalid_parameter, not_found
from sandbox.google.formats import zone_or_none
from sandbox.google.oauth import AccessToken, OAuthState
from sandbox.server import Request, Response
from sandbox.store import Account, Calendar, Store


@dataclass
class Call:
    """One authenticated, validated Calendar API request."""

    request: Request
    method: Method
    account: Account
    token: AccessToken
    params: dict[str, Any]
    body: dict[str, Any]
    fields: FieldSelector | None = None
    selected: bool = False  # the partial response was applied by the handler

    def respond(self, data: Any) -> Response:
        """A JSON answer with the partial response (`fields`) applied before encoding: a large
        page encoded once, not whole and then again in part."""
        if self.fields is not None:
            data = self.fields.apply(data)
            self.selected = True
        return Response.json(data)


class CalendarAPI:
    def __init__(self, state: OAuthState, store: Store) -> None:
        self.state = state
        self.store = store

    def handler(
        self, method: Method, implementation: Callable[[Call], Response] | None
    ) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            token = self.state.access_token(request)
            params = validate(method, request)
            if "timeZone" in params and zone_or_none(params["timeZone"]) is None:
                raise invalid_parameter("timeZone", f"Invalid time zone: {params['timeZone']}")
            if not method.scopes.intersection(token.grant.scopes):
                scope = " ".join(sorted(method.scopes))
                challenge = (
                    'Bearer realm="https://accounts.google.com/", error="insufficient_scope", '
                    f'scope="{scope}"'
                )
                raise GoogleError(
                    403,
                    "insufficientPermissions",
                    "Insufficient Permission",
                    summary="Request had insufficient authentication scopes.",
                    headers={"WWW-Authenticate": challenge},
                )
            if implementation is None:
                raise GoogleError(
                    501,
                    "notImplemented",
                    f"The sandbox does not emulate calendar.{method.id}.",
                )
            account = self.store.account(token.grant.email)
            if account is None:
                raise GoogleError(401, "authError", "Invalid Credentials")
            request.account = account
            selector = FieldSelector(params["fields"]) if params.get("fields") else None
            call = Call(
                request, method, account, token, params, json_body(method, request), selector
            )
            response = implementation(call)
            if selector is not None and response.body and not call.selected:
                data = response.data if response.data is not None else json.loads(response.body)
                response.body = json.dumps(
                    selector.apply(data), ensure_ascii=False, separators=(",", ":")
                ).encode()
            return response

        return handle


def calendar_of(call: Call, *, write: bool = False) -> Calendar:
    wanted = call.params["calendarId"]
    account = call.account
    if wanted == "primary":
        calendar = account.primary
    else:
        calendar = account.calendars.get(wanted) or account.calendars.get(wanted.lower())
    if calendar is None:
        raise not_found()
    if write and not calendar.can_edit:
        raise GoogleError(
            403, "requiredAccessLevel", "You need to have writer access to this calendar."
        )
    return calendar


def json_body(method: Method, request: Request) -> dict[str, Any]:
    if method.request is None or not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as error:
        raise GoogleError(400, "parseError", "Parse Error") from error
    if not isinstance(data, dict):
        raise GoogleError(400, "badRequest", "The request body must be a JSON object.")
    return data
