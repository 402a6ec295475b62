"""The sandbox's own pages: accounts, calendars and events, fault controls, counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from calendars.sandbox.core import Request, Response, Router

if TYPE_CHECKING:
    from calendars.sandbox.core import Sandbox


def install(sandbox: Sandbox) -> Router:
    router = Router()

    @router.route("GET", r"/_sandbox/?", "sandbox.page")
    def index(request: Request) -> Response:
        return Response.html("<!DOCTYPE html><title>Sandbox</title><h1>Sandbox</h1>")

    return router
