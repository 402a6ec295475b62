"""The next page of a listing is asked for while one is written: the provider's wait is spent
writing, and nothing else changes (a page with its checkpoint, faults handled as before)."""

from __future__ import annotations

import pytest

from calendars.errors import ProviderError
from calendars.models import CalendarEvent
from calendars.providers.google import api as google_api
from calendars.providers.outlook import api as outlook_api
from calendars.providers.types import RemoteEvent
from calendars.sync import importing
from calendars.sync.importing import calendar_import
from tests.calendars.calendar_helpers import (
    LIST_ENDPOINT,
    expected_ids,
    imported_ids,
    wait_for,
)
from tests.calendars.connect_helpers import connect

PAGE_SIZE = {"google": google_api, "outlook": outlook_api}
PROVIDERS = ["google", "outlook"]

pytestmark = pytest.mark.usefixtures("wide_window")


@pytest.fixture
def small_pages(sandbox_settings, learner, monkeypatch):
    """The learner's primary calendar of `provider`, listed 10 entries a page."""

    def make(provider):
        integration = connect(sandbox_settings, learner, provider)
        monkeypatch.setattr(PAGE_SIZE[provider], "EVENTS_PAGE_SIZE", 10)
        account = sandbox_settings.store.account(integration.account_email)
        sandbox_settings.reset_counters()
        return integration.calendars.get(is_primary=True), account

    return make


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_next_page_is_asked_for_while_one_is_written(
    sandbox_settings, small_pages, monkeypatch, provider
):
    calendar, account = small_pages(provider)
    real_apply = importing._apply
    asked_meanwhile = []

    def apply(calendar, page, **kwargs):
        if page.next_page:
            written = len(asked_meanwhile) + 1  # this page's rank
            asked_meanwhile.append(
                wait_for(
                    lambda: sandbox_settings.count(LIST_ENDPOINT[provider]) > written, timeout=10
                )
            )
        return real_apply(calendar, page, **kwargs)

    monkeypatch.setattr(importing, "_apply", apply)
    result = calendar_import(calendar=calendar)

    assert len(asked_meanwhile) >= 2 and all(asked_meanwhile)
    assert imported_ids(calendar) == expected_ids(account, calendar, provider)
    assert result.requests == sandbox_settings.count(LIST_ENDPOINT[provider])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_page_fetched_ahead_is_written_only_after_the_one_before(
    sandbox_settings, small_pages, monkeypatch, provider
):
    """A failure while page 2 is written (page 3 already asked for) leaves page 1 and its
    checkpoint; the next import resumes at page 2 and ends with each event once."""
    calendar, account = small_pages(provider)
    real_apply = importing._apply
    written = []

    def apply(calendar, page, **kwargs):
        counts = real_apply(calendar, page, **kwargs)
        written.append(page)
        if len(written) == 2:
            assert wait_for(lambda: sandbox_settings.count(LIST_ENDPOINT[provider]) >= 3)
            raise RuntimeError("the database went away")
        return counts

    monkeypatch.setattr(importing, "_apply", apply)
    with pytest.raises(RuntimeError):
        calendar_import(calendar=calendar)

    first = {i.external_id for i in written[0].items if isinstance(i, RemoteEvent)}
    assert imported_ids(calendar) == first
    calendar.refresh_from_db()
    assert calendar.resume_from and written[0].next_page in calendar.resume_from
    monkeypatch.setattr(importing, "_apply", real_apply)
    calendar_import(calendar=calendar)
    expected = expected_ids(account, calendar, provider)
    assert imported_ids(calendar) == expected
    assert CalendarEvent.objects.filter(calendar=calendar).count() == len(expected)


@pytest.mark.parametrize(
    ("provider", "kind", "waits_expected"),
    [("google", "rate_limit", [7]), ("outlook", "rate_limit", [7]),
     ("google", "unauthorized", []), ("outlook", "unauthorized", [])],
)  # fmt: skip
def test_a_failure_of_the_page_asked_ahead_is_handled_as_in_turn(
    sandbox_settings, small_pages, no_waiting, provider, kind, waits_expected
):
    """Page 2, asked for while page 1 is written, is refused: the import waits as the
    provider says, or, the stored access token refused again, refreshes it (in its own
    thread, under the integration's lock), then asks again and goes on."""
    calendar, account = small_pages(provider)
    times = 2 if kind == "unauthorized" else 1
    sandbox_settings.add_fault(
        kind, endpoint=LIST_ENDPOINT[provider], after=1, times=times, retry_after=7
    )

    result = calendar_import(calendar=calendar)

    assert no_waiting == waits_expected
    token = "google.token" if provider == "google" else "microsoft.token"
    assert sandbox_settings.count(token) == (1 if kind == "unauthorized" else 0)
    assert imported_ids(calendar) == expected_ids(account, calendar, provider)
    assert result.requests == sandbox_settings.count(LIST_ENDPOINT[provider])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_page_asked_ahead_that_keeps_failing_fails_the_import_as_before(
    sandbox_settings, small_pages, no_waiting, provider, settings
):
    calendar, _account = small_pages(provider)
    settings.CALENDAR_RETRY_ATTEMPTS = 3
    sandbox_settings.add_fault("server_error", endpoint=LIST_ENDPOINT[provider], after=1, times=0)

    with pytest.raises(ProviderError) as excinfo:
        calendar_import(calendar=calendar)

    assert not excinfo.value.permanent
    assert sandbox_settings.count(LIST_ENDPOINT[provider]) == 1 + settings.CALENDAR_RETRY_ATTEMPTS
    assert len(no_waiting) == settings.CALENDAR_RETRY_ATTEMPTS - 1
    calendar.refresh_from_db()
    assert calendar.resume_from  # page 1 and its checkpoint were committed
