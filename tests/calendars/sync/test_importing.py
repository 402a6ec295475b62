"""The import engine against the sandbox: full and incremental listings, 410, checkpoints,
exported events, entries that cannot be understood, and every provider fault."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calendars.errors import ProviderError, ReconnectRequired
from calendars.models import Calendar, CalendarEvent, CalendarIntegration
from calendars.providers.google import api as google_api
from calendars.providers.google.normalize import IMPORTED_TYPES
from calendars.providers.outlook import api as outlook_api
from calendars.providers.types import RemoteEvent
from calendars.sync import importing
from calendars.sync.importing import calendar_import, import_window, integration_import
from sandbox.store import Event, new_google_id, new_graph_id
from tests.calendars.calendar_helpers import LIST_ENDPOINT, expected_ids, imported_ids
from tests.calendars.connect_helpers import connect

PAGE_SIZE = {"google": google_api, "outlook": outlook_api}

pytestmark = pytest.mark.usefixtures("wide_window", "no_waiting")


@pytest.fixture
def waits(no_waiting):
    """The engine's waits, recorded."""
    return no_waiting


def _setup(sandbox, user, provider, email=None):
    integration = connect(sandbox, user, provider, email=email)
    calendar = integration.calendars.get(is_primary=True)
    account = sandbox.store.account(integration.account_email)
    return integration, calendar, account


def _add_event(sandbox, account, calendar, **fields):
    remote = account.calendars[calendar.external_id]
    new_id = new_google_id() if account.provider == "google" else new_graph_id()
    start = fields.pop("start", remote.events[next(iter(remote.events))].start_utc())
    title = fields.pop("title", "Ajouté")
    event = Event(id=new_id, calendar_id=remote.id, ical_uid=f"{new_id}@t", title=title,
                  start=start, end=start + timedelta(hours=1), **fields)  # fmt: skip
    sandbox.store.save(account, remote, event)
    return event


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_full_import_ends_with_exactly_the_providers_events(sandbox_settings, learner, provider):
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)

    result = calendar_import(calendar=calendar)

    assert result.full
    assert imported_ids(calendar) == expected_ids(account, calendar, provider)
    assert result.created == len(expected_ids(account, calendar, provider))
    calendar.refresh_from_db()
    assert calendar.sync_token and not calendar.resume_from
    sample = CalendarEvent.objects.filter(calendar=calendar, all_day=False).first()
    assert sample.start.tzinfo is not None and sample.end > sample.start


def test_events_keep_dates_zones_series_and_links(sandbox_settings, learner):
    _integration, calendar, account = _setup(sandbox_settings, learner, "google")
    calendar_import(calendar=calendar)
    remote = account.calendars[calendar.external_id]
    occurrence = next(e for e in remote.events.values()
                      if e.series_id and e.status != "cancelled" and not e.deleted)  # fmt: skip
    imported = CalendarEvent.objects.get(calendar=calendar, external_id=occurrence.id)
    assert imported.series_id == occurrence.series_id
    assert imported.start == occurrence.start_utc()
    assert imported.html_link.startswith(sandbox_settings.http_url)
    all_day = next(e for e in remote.events.values() if e.all_day and not e.deleted
                   and e.status != "cancelled")  # fmt: skip
    stored = CalendarEvent.objects.get(calendar=calendar, external_id=all_day.id)
    assert (stored.all_day, stored.start_date, stored.end_date) == (
        True,
        all_day.start,
        all_day.end,
    )


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_incremental_import_applies_creations_changes_and_deletions(
    sandbox_settings, learner, provider
):
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    calendar_import(calendar=calendar)
    remote = account.calendars[calendar.external_id]
    added = _add_event(sandbox_settings, account, calendar)
    changed = next(e for e in remote.events.values() if e.id in imported_ids(calendar)
                   and e.id != added.id and not e.series_id)  # fmt: skip
    changed.title = "Titre changé chez le fournisseur"
    sandbox_settings.store.save(account, remote, changed)
    gone = next(e for e in remote.events.values() if e.id in imported_ids(calendar)
                and e.id not in (added.id, changed.id) and not e.series_id)  # fmt: skip
    sandbox_settings.store.delete(account, remote, gone)

    result = calendar_import(calendar=calendar)

    assert not result.full
    assert (result.created, result.updated, result.deleted) == (1, 1, 1)
    assert CalendarEvent.objects.get(calendar=calendar, external_id=changed.id).title == (
        "Titre changé chez le fournisseur"
    )
    assert imported_ids(calendar) == expected_ids(account, calendar, provider)


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_incremental_import_with_no_change_sends_one_request_and_writes_nothing(
    sandbox_settings, learner, provider
):
    _integration, calendar, _account = _setup(sandbox_settings, learner, provider)
    calendar_import(calendar=calendar)
    calendar.refresh_from_db()
    sandbox_settings.reset_counters()

    with CaptureQueriesContext(connection) as queries:
        result = calendar_import(calendar=calendar)

    assert sandbox_settings.count(LIST_ENDPOINT[provider]) == 1
    writes = [q["sql"] for q in queries.captured_queries
              if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]  # fmt: skip
    assert writes == []
    assert result.as_dict() == {"created": 0, "updated": 0, "deleted": 0, "skipped": 0}


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_refused_sync_token_leads_to_a_full_import_without_duplicates_or_stale_rows(
    sandbox_settings, learner, provider
):
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    calendar_import(calendar=calendar)
    remote = account.calendars[calendar.external_id]
    untouched = CalendarEvent.objects.filter(calendar=calendar).order_by("pk").first()
    stamp = untouched.updated_at
    # Removed at the provider while its sync state is lost: only a full listing can tell.
    gone = next(e for e in remote.events.values() if e.id in imported_ids(calendar)
                and e.id != untouched.external_id and not e.series_id)  # fmt: skip
    sandbox_settings.store.delete(account, remote, gone)
    sandbox_settings.store.invalidate_sync_state(account)

    result = calendar_import(calendar=calendar)

    assert result.full
    assert imported_ids(calendar) == expected_ids(account, calendar, provider)
    assert CalendarEvent.objects.filter(calendar=calendar).count() == len(imported_ids(calendar))
    untouched.refresh_from_db()
    assert untouched.updated_at == stamp


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_interrupted_full_import_resumes_from_its_checkpoint(
    sandbox_settings, learner, provider, monkeypatch, settings
):
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    monkeypatch.setattr(PAGE_SIZE[provider], "EVENTS_PAGE_SIZE", 10)
    settings.CALENDAR_RETRY_ATTEMPTS = 2
    real_apply = importing._apply
    applied = []  # the events of each page applied

    def recording_apply(calendar, page, **kwargs):
        applied.append(sum(isinstance(item, RemoteEvent) for item in page.items))
        return real_apply(calendar, page, **kwargs)

    monkeypatch.setattr(importing, "_apply", recording_apply)
    # The provider fails from the third page on (the next page is asked for while one is
    # written: the fault is set before, by count).
    sandbox_settings.add_fault("server_error", endpoint=LIST_ENDPOINT[provider], times=0, after=2)
    with pytest.raises(ProviderError):
        calendar_import(calendar=calendar)
    calendar.refresh_from_db()
    assert calendar.resume_from and not calendar.sync_token
    assert len(applied) == 2
    committed = sum(applied[:2])
    assert 10 < committed <= 20  # two pages of 10 entries, series masters among them (Outlook)
    assert len(imported_ids(calendar)) == committed  # two pages committed with their checkpoint

    sandbox_settings.clear_faults()
    sandbox_settings.reset_counters()
    result = calendar_import(calendar=calendar)

    expected = expected_ids(account, calendar, provider)
    assert imported_ids(calendar) == expected
    assert CalendarEvent.objects.filter(calendar=calendar).count() == len(expected)
    entries = len(expected) + len(masters_listed(account, calendar, provider))
    pages = -(-entries // 10)  # the listing's pages, rounded up
    assert sandbox_settings.count(LIST_ENDPOINT[provider]) <= pages - 2 + 1
    assert result.created == len(expected) - committed


def masters_listed(account, calendar, provider):
    """The series masters a full listing gives besides the events: Graph's first round lists
    those whose series begins inside the window."""
    if provider != "outlook":
        return set()
    start, end = import_window()
    return {
        e.id
        for e in account.calendars[calendar.external_id].events.values()
        if e.is_master and not e.deleted and start <= e.start_utc() < end
    }


def test_events_the_application_exported_are_not_imported_back(sandbox_settings, learner):
    _integration, calendar, account = _setup(sandbox_settings, learner, "google")
    ours = _add_event(sandbox_settings, account, calendar,
                      private_properties={"formationId": "42"})  # fmt: skip
    calendar_import(calendar=calendar)
    assert ours.id not in imported_ids(calendar)


def test_events_exported_to_outlook_are_recognised_by_their_transaction_id(
    sandbox_settings, learner
):
    _integration, calendar, account = _setup(sandbox_settings, learner, "outlook")
    ours = _add_event(sandbox_settings, account, calendar, transaction_id="formation-3-17")
    theirs = _add_event(sandbox_settings, account, calendar, transaction_id="their-own-id")
    calendar_import(calendar=calendar)
    assert ours.id not in imported_ids(calendar)
    assert theirs.id in imported_ids(calendar)


def test_entries_that_cannot_be_understood_are_skipped_and_counted(sandbox_settings, learner):
    _integration, calendar, account = _setup(sandbox_settings, learner, "google")
    remote = account.calendars[calendar.external_id]
    odd = {e.id for e in remote.events.values() if e.event_type not in IMPORTED_TYPES
           and not e.deleted and e.status != "cancelled"}  # fmt: skip
    broken = _add_event(sandbox_settings, account, calendar)
    broken.end = broken.start - timedelta(hours=2)  # ends before it starts
    sandbox_settings.store.save(account, remote, broken)

    result = calendar_import(calendar=calendar)

    assert result.skipped >= len(odd) + 1
    assert not (odd | {broken.id}) & imported_ids(calendar)
    assert imported_ids(calendar) == expected_ids(account, calendar, "google") - {broken.id}


@pytest.mark.parametrize(
    ("provider", "kind"),
    [("google", "rate_limit"), ("google", "rate_limit_403"), ("google", "unavailable"),
     ("outlook", "rate_limit"), ("outlook", "unavailable")],  # Graph has no 403 rate limit
)  # fmt: skip
def test_rate_limits_wait_for_retry_after(sandbox_settings, learner, waits, provider, kind):
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    sandbox_settings.add_fault(kind, endpoint=LIST_ENDPOINT[provider], times=2, retry_after=7)

    calendar_import(calendar=calendar)

    assert waits == [7, 7]
    assert imported_ids(calendar) == expected_ids(account, calendar, provider)


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_server_errors_back_off_with_jitter_a_bounded_number_of_times(
    sandbox_settings, learner, waits, provider, settings
):
    _integration, calendar, _account = _setup(sandbox_settings, learner, provider)
    sandbox_settings.add_fault("server_error", endpoint=LIST_ENDPOINT[provider], times=0)
    sandbox_settings.reset_counters()

    with pytest.raises(ProviderError) as excinfo:
        calendar_import(calendar=calendar)

    assert not excinfo.value.permanent
    assert sandbox_settings.count(LIST_ENDPOINT[provider]) == settings.CALENDAR_RETRY_ATTEMPTS
    assert len(waits) == settings.CALENDAR_RETRY_ATTEMPTS - 1
    for attempt, wait in enumerate(waits):
        assert 0 <= wait <= settings.CALENDAR_RETRY_BASE * 2**attempt


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_timeout_is_retried(sandbox_settings, learner, waits, provider, settings):
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    settings.CALENDAR_HTTP_TIMEOUT = 0.3
    sandbox_settings.add_fault("slow", endpoint=LIST_ENDPOINT[provider], delay=1.0)

    calendar_import(calendar=calendar)

    assert len(waits) == 1
    assert imported_ids(calendar) == expected_ids(account, calendar, provider)


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_refused_access_token_is_refreshed_once(sandbox_settings, learner, provider):
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    sandbox_settings.add_fault("unauthorized", endpoint=LIST_ENDPOINT[provider])
    sandbox_settings.reset_counters()

    calendar_import(calendar=calendar)

    token = "google.token" if provider == "google" else "microsoft.token"
    assert sandbox_settings.count(token) == 1
    assert imported_ids(calendar) == expected_ids(account, calendar, provider)


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_revoked_grant_marks_the_integration_needs_reconnect(sandbox_settings, learner, provider):
    integration, _calendar, account = _setup(sandbox_settings, learner, provider)
    sandbox_settings.provider_for(account).revoke_account(account)
    sandbox_settings.provider_for(account).expire_access_tokens(account)

    with pytest.raises(ReconnectRequired):
        integration_import(integration=integration)

    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.NEEDS_RECONNECT


def test_only_chosen_calendars_are_imported(sandbox_settings, learner):
    integration, calendar, _account = _setup(sandbox_settings, learner, "outlook")
    team = integration.calendars.get(name="Équipe projet")
    result = integration_import(integration=integration)
    assert result.created == len(imported_ids(calendar))
    assert not CalendarEvent.objects.filter(calendar=team).exists()
    integration.refresh_from_db()
    assert integration.last_synced_at is not None


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_queries_grow_with_pages_not_with_events(sandbox_settings, learner, provider, monkeypatch):
    _integration, calendar, _account = _setup(sandbox_settings, learner, provider)
    monkeypatch.setattr(PAGE_SIZE[provider], "EVENTS_PAGE_SIZE", 20)
    with CaptureQueriesContext(connection) as small_pages:
        calendar_import(calendar=calendar)
    pages_small = sandbox_settings.count(LIST_ENDPOINT[provider])
    Calendar.objects.filter(pk=calendar.pk).update(sync_token="", resume_from="")
    CalendarEvent.objects.filter(calendar=calendar).delete()
    calendar.refresh_from_db()
    sandbox_settings.reset_counters()
    monkeypatch.setattr(PAGE_SIZE[provider], "EVENTS_PAGE_SIZE", 1000)
    with CaptureQueriesContext(connection) as one_page:
        calendar_import(calendar=calendar)

    assert sandbox_settings.count(LIST_ENDPOINT[provider]) == 1
    per_page = (len(small_pages.captured_queries) - len(one_page.captured_queries)) / max(
        pages_small - 1, 1
    )
    # A fixed cost a page (savepoints, the token's row lock, one select, one bulk write, the
    # checkpoint): a cost per event would be 20 or more here.
    assert per_page <= 12
    assert len(one_page.captured_queries) <= 20


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_imported_events_keep_no_description(sandbox_settings, learner, provider):
    """No page or API answer shows a learner's own event bodies: none is kept."""
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    noted = _add_event(sandbox_settings, account, calendar,
                       description="Code d'accès du bâtiment : 4512")  # fmt: skip

    calendar_import(calendar=calendar)

    stored = CalendarEvent.objects.get(calendar=calendar, external_id=noted.id)
    assert stored.title == "Ajouté"
    assert not CalendarEvent.objects.filter(calendar=calendar).exclude(description="").exists()
    account.calendars[calendar.external_id].events.pop(noted.id)


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_resume_point_the_provider_refuses_lists_the_calendar_again(
    sandbox_settings, learner, provider, settings
):
    """An interrupted full listing keeps its next page; later the provider refuses it (Google:
    400 invalid page token; Graph: 410 for a skiptoken it no longer knows). The import lists
    again instead of failing the same way at every sync."""
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    calendar_import(calendar=calendar)
    start, end = import_window()
    page = (
        "CiAKGjBpOGxnZjVnZmR0cjg4bmJtZjZxNGQ5YzIYAQ"
        if provider == "google"
        else f"{settings.OUTLOOK_GRAPH_URL}/me/calendars/{calendar.external_id}"
        "/calendarView/delta?$skiptoken=spent"
    )
    checkpoint = {"page": page, "from": start.isoformat(), "to": end.isoformat()}
    Calendar.objects.filter(pk=calendar.pk).update(
        sync_token="", resume_from=json.dumps(checkpoint)
    )
    calendar.refresh_from_db()

    result = calendar_import(calendar=calendar)

    assert result.full
    calendar.refresh_from_db()
    assert not calendar.resume_from and calendar.sync_token
    assert imported_ids(calendar) == expected_ids(account, calendar, provider)
    assert not calendar_import(calendar=calendar).full  # incremental again from there


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_text_the_database_cannot_store_is_cleaned_before_writing(
    sandbox_settings, learner, provider
):
    """A NUL byte in a title or a place: PostgreSQL refuses the whole statement, and every
    later import of the calendar with it. Cleaned once, as the provider's answer comes in."""
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    calendar_import(calendar=calendar)
    event = _add_event(
        sandbox_settings,
        account,
        calendar,
        title="Réunion\x00 budget",
        location="Salle\x00 2",
        start=timezone.now() + timedelta(days=3),
    )

    result = calendar_import(calendar=calendar)

    stored = CalendarEvent.objects.get(calendar=calendar, external_id=event.id)
    assert (stored.title, stored.location) == ("Réunion budget", "Salle 2")
    assert result.created == 1
    assert imported_ids(calendar) == expected_ids(account, calendar, provider)


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_listing_that_suddenly_comes_back_empty_wipes_nothing(
    sandbox_settings, learner, provider
):
    """vdirsyncer's StorageEmpty: a full listing with nothing in it, for a calendar that held
    events, keeps them with a warning; the next sync lists again and decides."""
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    calendar_import(calendar=calendar)
    held = imported_ids(calendar)
    assert held
    sandbox_settings.store.invalidate_sync_state(account)  # the next import lists everything
    sandbox_settings.add_fault("empty", endpoint=LIST_ENDPOINT[provider], times=0)

    glitch = calendar_import(calendar=calendar)

    assert glitch.full and glitch.deleted == 0 and glitch.warnings
    assert imported_ids(calendar) == held
    calendar.refresh_from_db()
    assert calendar.empty_listing_at is not None and not calendar.sync_token
    sandbox_settings.clear_faults()

    back = calendar_import(calendar=calendar)  # the provider lists it whole again

    assert back.full and back.deleted == 0 and not back.warnings
    assert imported_ids(calendar) == expected_ids(account, calendar, provider) == held
    calendar.refresh_from_db()
    assert calendar.empty_listing_at is None and calendar.sync_token


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_calendar_really_emptied_is_emptied_when_a_second_listing_agrees(
    sandbox_settings, learner, provider
):
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    calendar_import(calendar=calendar)
    sandbox_settings.store.invalidate_sync_state(account)
    sandbox_settings.add_fault("empty", endpoint=LIST_ENDPOINT[provider], times=0)

    first = calendar_import(calendar=calendar)
    second = calendar_import(calendar=calendar)

    assert first.deleted == 0 and first.warnings
    assert second.deleted > 0 and not second.warnings
    assert imported_ids(calendar) == set()


ANSWERS = {"needsAction": "needs_action", "accepted": "accepted", "tentative": "tentative",
           "declined": "declined"}  # fmt: skip


def _shown_busy(provider, event):
    """Google: busy unless transparent. Graph: showAs, which is "free" for an event marked
    so and, by default, for an all-day one, and "tentative" (busy) for an invitation not
    firmly accepted."""
    if event.free:
        return False
    if provider == "outlook" and event.all_day:
        return bool(event.organizer) and event.response in {"tentative", "needsAction"}
    return True


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_invitations_come_in_with_the_learners_answer_and_their_busy_time(
    sandbox_settings, learner, provider
):
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)

    calendar_import(calendar=calendar)

    remote = account.calendars[calendar.external_id].events
    stored = {
        e.external_id: (e.response, e.busy) for e in CalendarEvent.objects.filter(calendar=calendar)
    }
    expected = {
        external_id: (
            ANSWERS[remote[external_id].response] if remote[external_id].organizer else "",
            _shown_busy(provider, remote[external_id]),
        )
        for external_id in stored
    }
    assert stored == expected
    assert {response for response, _busy in stored.values()} == {"", *ANSWERS.values()}
    assert {busy for _response, busy in stored.values()} == {True, False}


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_an_events_description_is_never_stored(sandbox_settings, learner, provider):
    _integration, calendar, account = _setup(sandbox_settings, learner, provider)
    body = "Code d'accès de la salle : 4471, médecin à 18 h"
    added = _add_event(sandbox_settings, account, calendar, description=body)

    calendar_import(calendar=calendar)  # full
    changed = _add_event(sandbox_settings, account, calendar, description=body)
    calendar_import(calendar=calendar)  # incremental

    stored = calendar.events.filter(external_id__in=[added.id, changed.id])
    assert stored.count() == 2
    assert set(stored.values_list("description", flat=True)) == {""}
    assert not calendar.events.filter(description__contains="4471").exists()
