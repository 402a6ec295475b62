"""The site's answers as the calendar tests read them: a page's messages, the JSON API's calls
and errors."""

from __future__ import annotations

import html
import json
import re

from django.test import Client
from django.utils import translation
from django.utils.html import strip_tags

from calendars.failures import FAILURES

BASE = "/api/calendar-integration"


def text_of(response) -> str:
    """A page's HTML with its character references decoded: "n'a" rather than "n&#x27;a"."""
    return html.unescape(response.content.decode())


def words_of(html_text: str) -> str:
    """What a piece of a page reads, without its tags, references decoded and spaces as one."""
    return " ".join(html.unescape(strip_tags(html_text)).split())


def said(code: str, language: str = "fr") -> str:
    """The catalogue's sentence for the failure `code`, as a learner reading `language` reads
    it (whatever language an earlier request left active)."""
    with translation.override(language):
        return str(FAILURES[code].message)


def sync_line(response, provider: str) -> str:
    """The HTML of where `provider`'s syncs stand, on the calendar page or a settings card."""
    found = re.search(
        rf'<div class="sync-state[^"]*" id="sync-{provider}">.*?\n</div>', response.text, re.S
    )
    assert found, f"no sync status for {provider}"
    return found.group(0)


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
