"""The mailbox: /me and its calendars.

https://learn.microsoft.com/graph/api/user-get and
https://learn.microsoft.com/graph/api/user-list-calendars
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.microsoft.graph import Graph
from sandbox.microsoft.identity import AccessToken
from sandbox.microsoft.render import CALENDAR_PROPERTIES, View, calendar_json, selected
from sandbox.server import Request, Response
from sandbox.store import Account


class Mailbox:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def me(self, request: Request, account: Account, token: AccessToken) -> Response:
        given, _, family = account.name.partition(" ")
        return Response.json(
            {
                "@odata.context": f"{request.base_url}/v1.0/$metadata#users/$entity",
                "businessPhones": [],
                "displayName": account.name,
                "givenName": given,
                "jobTitle": None,
                "mail": account.email,
                "mobilePhone": None,
                "officeLocation": None,
                "preferredLanguage": "fr-FR",
                "surname": family or None,
                "userPrincipalName": account.email,
                "id": account.uid,
            }
        )

    def list_calendars(self, request: Request, account: Account, token: AccessToken) -> Response:
        keep = _selected(request)
        calendars = [keep(calendar_json(account, c)) for c in account.calendars.values()]
        context = f"{request.base_url}/v1.0/$metadata#users('{account.uid}')/calendars"
        return self.graph.paged(request, View(base=request.base_url), calendars, context)

    def get_calendar(self, request: Request, account: Account, token: AccessToken) -> Response:
        keep = _selected(request)
        calendar = self.graph.calendar(account, request.params.get("calendar"))
        return Response.json(keep(calendar_json(account, calendar)))


def _selected(request: Request) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`$select` on calendars, as Graph honours it: the properties named, and `id`."""
    names = selected(request, CALENDAR_PROPERTIES, "Calendar")
    if names is None:
        return lambda data: data
    keep = names | {"id"}
    return lambda data: {k: v for k, v in data.items() if k in keep}
