"""The import window moves with time. Graph's delta link keeps the window of its first
request, and Google never lists a series' instances past the first listing's end again: once
today's window has slid by CALENDAR_WINDOW_SLIDE_DAYS, the calendar is listed again with it,
and what fell out of it goes (PROVIDERS.md, "Delta state keeps its window")."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import pytest
from django.utils import timezone

from calendars.models import CalendarEvent
from calendars.sync import importing
from calendars.sync.importing import calendar_import
from sandbox.store import Event, new_google_id, new_graph_id
from tests.calendars.connect_helpers import connect

PROVIDERS = ["google", "outlook"]


@pytest.fixture
def short_window(settings):
    settings.CALENDAR_IMPORT_DAYS_BACK = 30
    settings.CALENDAR_IMPORT_DAYS_AHEAD = 30
    settings.CALENDAR_WINDOW_SLIDE_DAYS = 7


@pytest.fixture
def remote(sandbox_settings, learner, short_window):
    """Connects the learner; gives a function adding an event to the imported calendar at the
    sandbox (taken out again afterwards: the sandbox lives for the whole session)."""
    added = []

    def setup(provider: str):
        integration = connect(sandbox_settings, learner, provider)
        calendar = integration.calendars.get(is_primary=True)
        account = sandbox_settings.store.account(integration.account_email)
        store = account.calendars[calendar.external_id]

        def add(title: str, start) -> Event:
            new_id = new_google_id() if provider == "google" else new_graph_id()
            event = Event(id=new_id, calendar_id=store.id, ical_uid=f"{new_id}@test",
                          title=title, start=start, end=start + timedelta(hours=1))  # fmt: skip
            sandbox_settings.store.save(account, store, event)
            added.append((store, new_id))
            return event

        return calendar, add

    yield setup
    with sandbox_settings.store.lock:
        for store, event_id in added:
            store.events.pop(event_id, None)


def _listed_days_ago(monkeypatch, days: int) -> None:
    """The next import lists the calendar as it would have `days` days ago."""
    real = importing.import_window
    monkeypatch.setattr(
        importing, "import_window", lambda now=None: real(timezone.now() - timedelta(days=days))
    )


def _titles(calendar) -> set[str]:
    return set(CalendarEvent.objects.filter(calendar=calendar).values_list("title", flat=True))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_once_the_window_has_slid_the_calendar_is_listed_again_with_it(
    remote, monkeypatch, provider
):
    calendar, add = remote(provider)
    now = timezone.now()
    add("Bientôt passé", now - timedelta(days=35))  # inside the first window, not today's
    with monkeypatch.context() as patch:
        _listed_days_ago(patch, 8)
        assert calendar_import(calendar=calendar).full
    assert "Bientôt passé" in _titles(calendar)
    add("Plus tard", now + timedelta(days=25))  # past the first window, inside today's

    calendar.refresh_from_db()
    result = calendar_import(calendar=calendar)

    assert result.full
    titles = _titles(calendar)
    assert "Plus tard" in titles
    assert "Bientôt passé" not in titles
    calendar.refresh_from_db()
    assert calendar.window_end > now + timedelta(days=29)
    assert not calendar_import(calendar=calendar).full  # incremental again


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_window_that_slid_less_than_the_setting_stays_incremental(remote, monkeypatch, provider):
    calendar, _add = remote(provider)
    with monkeypatch.context() as patch:
        _listed_days_ago(patch, 3)
        calendar_import(calendar=calendar)
    calendar.refresh_from_db()

    assert not calendar_import(calendar=calendar).full


def test_an_incremental_listing_stores_nothing_past_the_windows_end(remote):
    calendar, add = remote("google")  # Google lists every change, whatever its date
    calendar_import(calendar=calendar)
    calendar.refresh_from_db()
    add("Dans deux ans", timezone.now() + timedelta(days=730))
    add("Dans quinze jours", timezone.now() + timedelta(days=15))

    result = calendar_import(calendar=calendar)

    assert not result.full
    titles = _titles(calendar)
    assert "Dans quinze jours" in titles
    assert "Dans deux ans" not in titles


@pytest.mark.parametrize("provider", PROVIDERS)
def test_listing_again_never_shows_the_calendar_empty(remote, monkeypatch, provider):
    calendar, _add = remote(provider)
    with monkeypatch.context() as patch:
        _listed_days_ago(patch, 8)
        calendar_import(calendar=calendar)
    before = CalendarEvent.objects.filter(calendar=calendar).count()
    client = importing.get_provider(provider).calendars
    monkeypatch.setattr(import_module(type(client).__module__), "EVENTS_PAGE_SIZE", 5)
    seen = []
    real_apply = importing._apply

    def counting_apply(calendar, page, **kwargs):
        seen.append(CalendarEvent.objects.filter(calendar=calendar).count())
        return real_apply(calendar, page, **kwargs)

    monkeypatch.setattr(importing, "_apply", counting_apply)
    calendar.refresh_from_db()
    assert calendar_import(calendar=calendar).full

    assert len(seen) > 2 and min(seen) >= before > 0
