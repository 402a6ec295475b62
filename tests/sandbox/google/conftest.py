"""Fixtures of the Google emulator's tests: the real client libraries, on plain-http
loopback, signed in as Camille."""

from __future__ import annotations

import pytest

from tests.sandbox.google.helpers import CAMILLE, calendar_service, google_credentials


@pytest.fixture(autouse=True)
def insecure_transport(monkeypatch):
    """oauthlib refuses plain http; the sandbox's Google listener is plain http on loopback."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def credentials(sandbox):
    return google_credentials(sandbox, CAMILLE)


@pytest.fixture
def service(sandbox, credentials):
    return calendar_service(sandbox, credentials)
