"""The Calendar v3 client is built once per thread (building it costs more CPU than an
unchanged sync's other work) and each call carries its own access token."""

from __future__ import annotations

import threading

import pytest

from calendars.errors import Unauthorized
from calendars.providers import get_provider
from calendars.providers.google.api import calendar_service
from calendars.services.credentials import integration_access_token
from tests.calendars.connect_helpers import connect


def test_one_client_per_thread_and_address(sandbox_settings, settings):
    first = calendar_service("a")
    assert calendar_service("b") is first
    assert first.events() is first.events()

    elsewhere = []
    thread = threading.Thread(target=lambda: elsewhere.append(calendar_service("c")))
    thread.start()
    thread.join()
    assert elsewhere[0] is not first

    settings.GOOGLE_API_URL = "http://127.0.0.1:9/"
    assert calendar_service("d") is not first


def test_each_call_carries_its_own_token(sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "google")
    token = integration_access_token(integration=integration)
    calendars = get_provider("google").calendars

    assert calendars.list_calendars(token)
    with pytest.raises(Unauthorized):
        calendars.list_calendars("not-a-token")
    assert calendars.list_calendars(token)
