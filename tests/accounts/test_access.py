"""Every page needs a signed-in user, except the sign-in pages themselves."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

# Views a visitor must reach without signing in, by URL name.
PUBLIC = {
    "login",
    "logout",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "set_language",
    "healthz",
    "readyz",  # an orchestrator's probe: says only which service does not answer
    "formations:feed",  # calendar programs have no session: the secret token is the key
    # Called by Google and Microsoft: the channel's secret is checked instead.
    "calendars:webhook_google",
    "calendars:webhook_outlook",
    "social:begin",
    "social:complete",
    "social:idp_launch",
    "social:app_launch",
    "admin:login",
}

SAMPLE_VALUES = {
    "int": "1",
    "str": "x",
    "slug": "x",
    "uuid": "00000000-0000-0000-0000-000000000001",
}


def _walk(patterns, prefix="", namespace=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield f"{namespace}{entry.name or ''}", prefix + str(entry.pattern)


def _sample_path(pattern: str) -> str:
    if pattern.startswith("^"):  # admin's regex routes: take the literal part.
        pattern = re.sub(r"\(\?P<\w+>[^)]*\)", "1", pattern).strip("^$")
    path = re.sub(
        r"<(?:(\w+):)?\w+>", lambda m: SAMPLE_VALUES.get(m.group(1) or "str", "x"), pattern
    )
    return "/" + path.replace("\\", "")


ALL_ROUTES = sorted(set(_walk(get_resolver().url_patterns)))
# The JSON API answers anonymous callers itself, in JSON (tests/calendars/test_api.py); only
# its documentation stays behind the sign-in page.
API_OPERATIONS = {name for name, _ in ALL_ROUTES if name.startswith("api:")} - {
    "api:openapi-json",
    "api:openapi-view",
}


def test_route_list_covers_the_application():
    names = {name for name, _ in ALL_ROUTES}
    assert {"formations:list", "formations:ics", "settings", "calendars:calendar"} <= names
    assert {"api:integrations", "api:openapi-view", "settings_api"} <= names
    assert names >= PUBLIC


@pytest.mark.parametrize(
    ("name", "pattern"),
    [r for r in ALL_ROUTES if r[0] not in PUBLIC | API_OPERATIONS],
    ids=lambda v: str(v),
)
def test_private_route_redirects_anonymous_visitors_to_login(client, db, name, pattern):
    path = _sample_path(pattern)
    response = client.get(path)
    assert response.status_code == 302, path
    login = reverse("admin:login") if name.startswith("admin:") else reverse("login")
    assert response["Location"].split("?")[0] in {reverse("login"), login}, path


@pytest.mark.parametrize(
    ("name", "pattern"), [r for r in ALL_ROUTES if r[0] in API_OPERATIONS], ids=lambda v: str(v)
)
def test_api_routes_answer_anonymous_visitors_in_json(client, db, name, pattern):
    response = client.get(_sample_path(pattern))
    assert response.status_code in {401, 404, 405}, name
    assert response["Content-Type"].startswith("application/json"), name


@pytest.mark.parametrize("name", ["login", "password_reset", "healthz", "readyz"])
def test_public_pages_open_without_signing_in(client, db, name):
    assert client.get(reverse(name)).status_code == 200
