from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from formations.models import Enrollment, Formation
from sandbox.core import Options, Sandbox

# The sandbox's test helpers check what they get with assert: pytest rewrites them as it does
# test modules, for the same detailed failure messages.
pytest.register_assert_rewrite("tests.sandbox.google.helpers", "tests.sandbox.microsoft.helpers")
# Real CalDAV servers for the pages', API's and browser's tests of the CalDAV provider.
pytest_plugins = ["tests.calendars.caldav.fixtures"]

User = get_user_model()
_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """PBKDF2 takes ~0.3 s a hash by design; tests hash many throwaway passwords."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_msal_metadata() -> None:
    """msal keeps the authority's OpenID configuration for the process; each test's sandbox
    (and its faults) must be asked again."""
    from calendars.providers.outlook import oauth

    oauth._MSAL_HTTP_CACHE.clear()


@pytest.fixture(autouse=True)
def no_push_channels(settings: Any) -> None:
    """Push channels call back a live server: the tests that want them start one
    (tests/calendars/test_push.py); elsewhere no channel is opened."""
    settings.CALENDAR_PUSH_ENABLED = False


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    def make(username: str | None = None, password: str = "pw-for-tests-1", **extra: Any) -> Any:
        username = username or f"user{next(_counter)}"
        extra.setdefault("email", f"{username}@example.com")
        return User.objects.create_user(username=username, password=password, **extra)

    return make


@pytest.fixture
def make_formation(db: None) -> Callable[..., Formation]:
    def make(
        *,
        start: datetime | None = None,
        hours: float = 3,
        learners: tuple[Any, ...] = (),
        **fields: Any,
    ) -> Formation:
        start = start or timezone.now() + timedelta(days=3)
        fields.setdefault("title", f"Formation {next(_counter)}")
        formation = Formation.objects.create(
            start=start, end=start + timedelta(hours=hours), **fields
        )
        for learner in learners:
            Enrollment.objects.create(learner=learner, formation=formation)
        return formation

    return make


@pytest.fixture
def learner(make_user: Callable[..., Any]) -> Any:
    return make_user("learner", first_name="Léa", last_name="Martin")


@pytest.fixture
def learner_client(learner: Any) -> Client:
    client = Client()
    client.force_login(learner)
    return client


@pytest.fixture
def staff(make_user: Callable[..., Any]) -> Any:
    return make_user("staff", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def wide_window(settings: Any) -> None:
    """Every event the sandbox generates inside the import window (in workers too: they are
    given these settings)."""
    settings.CALENDAR_IMPORT_DAYS_BACK = 400
    settings.CALENDAR_IMPORT_DAYS_AHEAD = 800


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One provider sandbox for the session, on free loopback ports."""
    options = Options(seed=7, events=60, state_dir=tmp_path_factory.mktemp("sandbox"))
    server = Sandbox(options).start("127.0.0.1")
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    """The running sandbox, with no fault rules, no operator fault (expired secret, tenant
    without user consent) and zeroed counters for each test, and no Graph request of the
    previous test still holding a mailbox's slot."""
    sandbox_server.clear_faults()
    sandbox_server.microsoft.identity.reset_operator_state()
    sandbox_server.settle()
    sandbox_server.reset_counters()
    yield sandbox_server
    sandbox_server.clear_faults()
    sandbox_server.microsoft.identity.reset_operator_state()


@pytest.fixture
def sandbox_settings(settings: Any, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """Django settings pointed at the sandbox, as CALENDAR_SANDBOX=true does for a real run."""
    settings.CALENDAR_SANDBOX = True
    settings.GOOGLE_AUTH_URI = f"{sandbox.http_url}/o/oauth2/v2/auth"
    settings.GOOGLE_TOKEN_URI = f"{sandbox.http_url}/token"
    settings.GOOGLE_REVOKE_URI = f"{sandbox.http_url}/revoke"
    settings.GOOGLE_API_URL = f"{sandbox.http_url}/"
    settings.OUTLOOK_AUTHORITY = f"{sandbox.https_url}/common"
    settings.OUTLOOK_GRAPH_URL = f"{sandbox.https_url}/v1.0"
    settings.OUTLOOK_CA_BUNDLE = str(sandbox.ca_path)
    # The clients the running sandbox knows (the session starts it with its defaults only).
    google_id, google_secret = next(iter(sandbox.options.google_clients.items()))
    outlook_id, outlook_secret = next(iter(sandbox.options.outlook_clients.items()))
    settings.GOOGLE_CLIENT_ID = settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = google_id
    settings.GOOGLE_CLIENT_SECRET = settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = google_secret
    settings.OUTLOOK_CLIENT_ID = settings.SOCIAL_AUTH_MICROSOFT_GRAPH_KEY = outlook_id
    settings.OUTLOOK_CLIENT_SECRET = settings.SOCIAL_AUTH_MICROSOFT_GRAPH_SECRET = outlook_secret
    # The app's own pages are served over plain http in tests, as in development.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    return sandbox
