"""Fixtures shared by the calendar tests."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.services import api_token_create
from calendars.models import Calendar, CalendarEvent, CalendarIntegration
from calendars.providers.outlook.normalize import FORMATION_PROPERTY_ID
from calendars.sync import retry

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


@pytest.fixture
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The engine's waits between attempts recorded, not slept; returns them."""
    waits: list[float] = []
    monkeypatch.setattr(retry, "sleep", waits.append)
    return waits


@pytest.fixture
def quick_retries(no_waiting: list[float], settings: Any) -> None:
    """A provider call tried twice, without waiting: a failing provider fails at once."""
    settings.CALENDAR_RETRY_ATTEMPTS = 2


@pytest.fixture
def bearer(learner: Any) -> dict[str, str]:
    """The headers of a script calling the API with the learner's token."""
    _, token = api_token_create(user=learner, name="tests")
    return {"Authorization": f"Bearer {token}"}


# --- calendars and events written here, without a provider --------------------------------------


@pytest.fixture
def make_calendar(db: None) -> Callable[..., Calendar]:
    def make(
        user: Any,
        *,
        provider: str = "google",
        name: str = "Agenda",
        external_id: str = "primary",
        import_enabled: bool = True,
    ) -> Calendar:
        integration, _ = CalendarIntegration.objects.get_or_create(
            user=user, provider=provider, defaults={"account_email": f"{user.username}@example.com"}
        )
        return Calendar.objects.create(
            integration=integration,
            external_id=external_id,
            name=name,
            is_primary=external_id == "primary",
            can_edit=True,
            import_enabled=import_enabled,
        )

    return make


@pytest.fixture
def make_event(db: None) -> Callable[..., CalendarEvent]:
    """A timed event from `start` (aware) for `hours`, or an all-day one from the date
    `all_day` for `days` days (stored as the sync engine does: dates, and their midnights in
    the event's zone)."""
    counter = iter(range(1, 10_000))

    def make(
        calendar: Calendar,
        *,
        start: datetime | None = None,
        hours: float = 1,
        all_day: date | None = None,
        days: int = 1,
        zone: str = "Europe/Paris",
        **fields: Any,
    ) -> CalendarEvent:
        fields.setdefault("title", f"Événement {next(counter)}")
        fields.setdefault("external_id", f"ev-{next(counter)}")
        fields.setdefault("html_link", f"https://calendar.example.com/{fields['external_id']}")
        if all_day is not None:
            end_date = all_day + timedelta(days=days)
            tz = zoneinfo.ZoneInfo(zone)
            return CalendarEvent.objects.create(
                calendar=calendar,
                all_day=True,
                start_date=all_day,
                end_date=end_date,
                start=datetime(all_day.year, all_day.month, all_day.day, tzinfo=tz),
                end=datetime(end_date.year, end_date.month, end_date.day, tzinfo=tz),
                time_zone=zone,
                **fields,
            )
        start = start or timezone.now() + timedelta(days=1)
        return CalendarEvent.objects.create(
            calendar=calendar, start=start, end=start + timedelta(hours=hours), **fields
        )

    return make


@pytest.fixture
def make_named_event(db: None) -> Callable[..., CalendarEvent]:
    """An event named by its external id (its title too, unless given): a timed one from
    `start` for `hours`, or an all-day one from the date `all_day` for `days` days (stored as
    the sync engine does: the dates and their midnights in `zone`)."""

    def make(calendar: Calendar, external_id: str, *, start: datetime | None = None,
             hours: float = 1, all_day: date | None = None, days: int = 1,
             zone: str = "Europe/Paris", **fields: Any) -> CalendarEvent:  # fmt: skip
        fields.setdefault("title", external_id)
        fields.setdefault("html_link", f"https://calendar.example.com/{external_id}")
        if all_day is not None:
            tz = zoneinfo.ZoneInfo(zone)
            end_date = all_day + timedelta(days=days)
            start = datetime(all_day.year, all_day.month, all_day.day, tzinfo=tz)
            end = datetime(end_date.year, end_date.month, end_date.day, tzinfo=tz)
            fields.update(all_day=True, start_date=all_day, end_date=end_date, time_zone=zone)
        else:
            assert start is not None
            end = start + timedelta(hours=hours)
        return CalendarEvent.objects.create(
            calendar=calendar, external_id=external_id, start=start, end=end, **fields
        )

    return make
