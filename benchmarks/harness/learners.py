"""The learner's side: the sandbox's consent page played as a browser would, formations."""

from __future__ import annotations

import html.parser
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests

REDIRECT = "http://testserver/calendar/callback/{}"
# The sandbox's own account of each provider (`manage.py calendar_sandbox` makes six).
ACCOUNTS = {"google": "camille.durand@gmail.test", "outlook": "camille.durand@contoso.test"}


class _ConsentForm(html.parser.HTMLParser):
    """The action, hidden fields and ticked scopes of the consent form (id="consent") of
    either provider."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.grants: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form" and attributes.get("id") == "consent":
            self._inside, self.action = True, attributes.get("action", "")
        elif self._inside and tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes["name"]] = attributes.get("value", "")
        elif (
            self._inside
            and tag == "input"
            and attributes.get("type") == "checkbox"
            and "checked" in attributes  # Google's granular consent: a browser sends ticked ones
        ):
            self.grants.append(attributes.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def consent(provider: str, auth_url: str, email: str) -> dict[str, str]:
    """Opens the sandbox's consent page, picks `email`, accepts; returns the callback's query."""
    page = requests.get(auth_url, timeout=10, allow_redirects=False)
    page.raise_for_status()
    form = _ConsentForm()
    form.feed(page.text)
    if not form.action:
        raise RuntimeError(f"No consent form on {provider}'s page ({page.status_code}).")
    button = {"decision": "allow"} if provider == "google" else {"action": "accept"}
    answer = requests.post(
        urljoin(auth_url, form.action),
        data={**form.fields, "account": email, **button, "grant": form.grants},
        timeout=10,
        allow_redirects=False,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"{provider}'s consent page answered {answer.status_code}.")
    return dict(parse_qsl(urlsplit(answer.headers["Location"]).query))


def connect(user: Any, provider: str, *, email: str | None = None) -> Any:
    """Connects `user`'s `provider` calendar through the consent flow (start, the sandbox's
    consent page, callback), as `email` (passed as login hint) or the sandbox's own account."""
    from calendars.services.connection import integration_connect_finish, integration_connect_start

    hint = {"login_hint": email} if email else {}
    url = integration_connect_start(
        user=user, provider_name=provider, redirect_uri=REDIRECT.format(provider), **hint
    )
    params = consent(provider, url, email or ACCOUNTS[provider])
    return integration_connect_finish(user=user, provider_name=provider, params=params)


def formations_create(starts: Iterable[datetime], *, duration: timedelta,
                      learner: Any = None) -> list[Any]:  # fmt: skip
    """`Formation n` starting at the n-th of `starts`, and `learner`'s enrolment in each if
    given. bulk_create sends no signal: nothing is exported before the measurement."""
    from formations.models import Enrollment, Formation

    formations = Formation.objects.bulk_create(
        Formation(title=f"Formation {n}", start=start, end=start + duration,
                  location=f"Salle {n % 7}", time_zone="Europe/Paris")
        for n, start in enumerate(starts)
    )  # fmt: skip
    if learner is not None:
        Enrollment.objects.bulk_create(Enrollment(learner=learner, formation=f) for f in formations)
    return formations
