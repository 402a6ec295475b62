"""Browser tests: Playwright for Python driving Debian's Chromium against pytest-django's
live server, over loopback only.

Playwright's own browser downloads are not reachable from our machines, so the browser is the
system's Chromium (Debian's `chromium` package, which .ci/run installs). Without it the tests
are skipped with the reason, except in CI, where they must run and a missing browser fails.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"

# Chromium as root in a container, on a closed network: no sandbox (needs user namespaces), no
# GPU, /tmp rather than a small /dev/shm, and none of the background calls to Google's hosts
# (component updates, sync, first-run pages). The host-resolver rule makes every other host name
# unresolvable, so that a page can only ever reach the loopback servers of the tests.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]

# Short enough that a broken page fails in seconds, long enough for a slow CI machine.
TIMEOUT_MS = 5_000
# make_user's default password (tests/conftest.py).
PASSWORD = "pw-for-tests-1"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1"}


# Package scope: one Chromium for all the tests of this folder (the only ones that see these
# fixtures), stopped as soon as they are done. Playwright's sync API marks an asyncio loop as
# running in the test thread between its calls, and that must not outlive the browser tests:
# Django's ORM refuses to run in a thread with a running loop, and asgiref's async_to_sync and
# asyncio.run() refuse to start in one.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    executable = Path(os.environ.get("BROWSER_EXECUTABLE", CHROMIUM))
    if not (executable.is_file() and os.access(executable, os.X_OK)):
        reason = (
            f"Chromium not found at {executable}: install Debian's chromium package "
            "(done by .ci/run)"
        )
        if _in_ci():
            pytest.fail(f"{reason}; in CI (CI=true) the browser tests must run", pytrace=False)
        pytest.skip(reason)

    with pytest.MonkeyPatch.context() as patch:
        # Because of that running loop, Django's async-unsafe check would raise
        # SynchronousOnlyOperation at the first ORM call of a test (its factories, the flush of
        # transactional_db). The check is moot here: the test thread only runs Playwright's loop
        # between its own calls, never concurrently with the ORM, and the live server answers
        # from a thread of its own with no loop. Restored when the browser tests end.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
            )
            expect.set_options(timeout=TIMEOUT_MS)
            yield browser
            browser.close()


@pytest.fixture
def context_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Options of each test's browser context; override the fixture, or parametrize it
    indirectly with the options to change (`{"viewport": ..., "java_script_enabled": False}`),
    for another locale or screen."""
    return {
        "locale": "fr-FR",
        "timezone_id": "Europe/Paris",
        "viewport": {"width": 1280, "height": 800},
        **getattr(request, "param", {}),
    }


# Every page reports what its Content-Security-Policy refused, as a console error.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture
def csp_violations() -> list[str]:
    """What the site's Content-Security-Policy refused during the test: none, or the test
    fails (a test that provokes one on purpose empties the list)."""
    return []


@pytest.fixture
def page(
    browser: Browser,
    live_server: Any,
    context_options: dict[str, Any],
    csp_violations: list[str],
) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies) for each test, whose relative URLs go to
    the live server; any Content-Security-Policy violation fails the test.

    Requesting it also starts the live server, with transactional database access: the server
    thread sees only committed data.
    """
    context = browser.new_context(base_url=live_server.url, **context_options)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()

    def seen(message: Any) -> None:
        if message.type == "error" and (
            "Content Security Policy" in message.text or "CSP violation" in message.text
        ):
            csp_violations.append(message.text)

    page.on("console", seen)
    yield page
    context.close()
    assert not csp_violations, f"Content-Security-Policy violations: {csp_violations}"


@pytest.fixture
def sign_in(page: Page) -> Callable[..., Page]:
    """`sign_in(user)` signs in through the real login form, as a learner would, waits until
    the site has let them in, and returns the page."""

    def sign_in_as(user: Any, password: str = PASSWORD) -> Page:
        username = user.get_username()
        page.goto("/accounts/login/")
        page.get_by_label("Nom d’utilisateur").fill(username)
        page.get_by_label("Mot de passe").fill(password)
        page.get_by_role("button", name="Se connecter", exact=True).click()
        expect(page, f"{username} could not sign in").not_to_have_url(
            re.compile("/accounts/login/")
        )
        return page

    return sign_in_as
