"""The real Google client libraries pointed at the sandbox: OAuth flow, credentials, service."""

from __future__ import annotations

import html.parser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_auth_httplib2
import httplib2
import requests
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build
from googleapiclient.http import BatchHttpRequest

from sandbox.constants import GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET
from sandbox.core import Sandbox

CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
CALENDAR_LIST = "https://www.googleapis.com/auth/calendar.calendarlist.readonly"
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
# Long names, so that the scopes Google answers with are the ones asked for.
SCOPES = ["openid", USERINFO_EMAIL, CALENDAR_EVENTS, CALENDAR_LIST]
REDIRECT_URI = "http://127.0.0.1:8000/calendars/google/callback"

CAMILLE = "camille.durand@gmail.test"
ALEX = "alex.martin@gmail.test"
SAM = "sam.nguyen@gmail.test"


def make_flow(sandbox: Sandbox, scopes: list[str] | None = None) -> Flow:
    """The web-server flow as the application builds it (PKCE on by default).

    oauthlib refuses http:// URLs unless OAUTHLIB_INSECURE_TRANSPORT is set: the tests set it
    with monkeypatch, since the sandbox listens on plain loopback HTTP.
    """
    config = {
        "web": {
            "client_id": GOOGLE_CLIENT_ID,
            "client_secret": GOOGLE_CLIENT_SECRET,
            "auth_uri": f"{sandbox.http_url}/o/oauth2/v2/auth",
            "token_uri": f"{sandbox.http_url}/token",
            "redirect_uris": [REDIRECT_URI],
        }
    }
    return Flow.from_client_config(config, scopes=scopes or SCOPES, redirect_uri=REDIRECT_URI)


class _FormReader(html.parser.HTMLParser):
    """The consent form's action and fields, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.accounts: list[str] = []
        self.checked: str | None = None
        self.grants: list[str] = []  # the scopes whose box is ticked (granular consent)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = attributes.get("action", "")
        elif tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "input" and attributes.get("type") == "checkbox":
            if "checked" in attributes:
                self.grants.append(attributes["value"])
        elif tag == "input" and attributes.get("type") == "radio":
            self.accounts.append(attributes["value"])
            if "checked" in attributes:
                self.checked = attributes["value"]


def read_consent_page(page: str) -> _FormReader:
    reader = _FormReader()
    reader.feed(page)
    return reader


def consent(
    sandbox: Sandbox,
    auth_url: str,
    email: str | None,
    decision: str = "allow",
    untick: tuple[str, ...] = (),
) -> str:
    """Opens the consent page, picks `email`, unticks the boxes of `untick` (granular consent)
    and presses a button; returns the redirect."""
    page = requests.get(auth_url, timeout=5, allow_redirects=False)
    assert page.status_code == 200, page.text
    form = read_consent_page(page.text)
    data: dict[str, Any] = dict(form.fields, decision=decision)
    data["grant"] = [s for s in form.grants if s not in untick]
    if email is not None:
        data["account"] = email
    answer = requests.post(
        sandbox.http_url + form.action, data=data, timeout=5, allow_redirects=False
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def redirect_params(location: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}


def google_credentials(
    sandbox: Sandbox, email: str = CAMILLE, scopes: list[str] | None = None
) -> Credentials:
    """Runs the whole authorization-code flow with PKCE, as the application will."""
    flow = make_flow(sandbox, scopes)
    auth_url, _ = flow.authorization_url(prompt="consent", login_hint=email)
    flow.fetch_token(authorization_response=consent(sandbox, auth_url, email))
    return flow.credentials


def calendar_service(sandbox: Sandbox, credentials: Credentials, timeout: float = 10) -> Any:
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout))
    return build(
        "calendar",
        "v3",
        http=http,
        static_discovery=True,
        client_options={"api_endpoint": f"{sandbox.http_url}/calendar/v3/"},
    )


def new_batch(sandbox: Sandbox, callback: Any = None) -> BatchHttpRequest:
    # Batches do not follow api_endpoint: they go to rootUrl + batchPath unless told.
    return BatchHttpRequest(callback=callback, batch_uri=f"{sandbox.http_url}/batch/calendar/v3")


def timed_event(summary: str, start: str, end: str, **fields: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "start": {"dateTime": start, "timeZone": "Europe/Paris"},
        "end": {"dateTime": end, "timeZone": "Europe/Paris"},
        **fields,
    }


def list_all(service: Any, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every item of an events.list, following nextPageToken; and the last page."""
    items: list[dict[str, Any]] = []
    request = service.events().list(**params)
    while True:
        page = request.execute()
        items += page.get("items", [])
        following = service.events().list_next(request, page)
        if following is None:
            return items, page
        request = following
