"""Fixtures shared by the calendar tests."""

from __future__ import annotations

import pytest

from calendars.providers.outlook.normalize import FORMATION_PROPERTY_ID

# The shared helpers assert: their failures are explained as the tests' own are.
pytest.register_assert_rewrite("tests.calendars.calendar_helpers", "tests.calendars.client_helpers")


@pytest.fixture
def forget_exported_events(sandbox):
    """The sandbox lives for the whole session: other tests count the events it lists."""
    yield
    markers = {"formationId", FORMATION_PROPERTY_ID}
    with sandbox.store.lock:
        for account in list(sandbox.store.accounts.values()):
            for calendar in account.calendars.values():
                for event_id in [e.id for e in calendar.events.values()
                                 if markers & set(e.private_properties)]:  # fmt: skip
                    del calendar.events[event_id]
