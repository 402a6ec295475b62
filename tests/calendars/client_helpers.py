"""The site's answers as the calendar tests read them: a page's messages, the JSON API's calls
and errors."""

from __future__ import annotations

import json

from django.test import Client

BASE = "/api/calendar-integration"


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def call(client: Client, method: str, path: str, body=None, **headers):
    if body is None:
        return getattr(client, method)(path, headers=headers)
    data = body if isinstance(body, str) else json.dumps(body)
    return getattr(client, method)(path, data, content_type="application/json", headers=headers)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return body["error"]
