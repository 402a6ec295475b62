"""The calendar page keeps itself current: a change synced in the background appears without
a click or a reload."""

from __future__ import annotations

import pytest
from django.db import connection
from playwright.sync_api import expect

from calendars import tasks
from calendars.models import CalendarEvent, SyncRun
from tests.calendars.connect_helpers import connect


def test_a_synced_change_appears_on_the_open_calendar_page(
    page, sign_in, make_user, sandbox_settings, settings, monkeypatch
):
    settings.CALENDAR_PAGE_REFRESH = 0.5
    demo = make_user("demo", password="demo")
    integration = connect(sandbox_settings, demo, "google")
    tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    # One the page shows (a declined invitation is not shown).
    imported = (
        CalendarEvent.objects.filter(calendar__integration=integration)
        .exclude(response=CalendarEvent.Response.DECLINED)
        .order_by("start")
    )
    event = imported.filter(start__gte=imported.first().start.replace(day=1)).first()

    sign_in(demo, "demo")
    page.goto(f"/calendar/?view=agenda&date={event.start:%Y-%m-%d}")
    expect(page.get_by_text(event.title, exact=False).first).to_be_visible()
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    # The learner renames it in their Google calendar; a worker syncs (here, this thread).
    account = sandbox_settings.store.account(integration.account_email)
    remote = account.calendars[event.calendar.external_id]
    changed = remote.events[event.external_id]
    changed.title = "Renommé dans Google Agenda"
    sandbox_settings.store.save(account, remote, changed)
    tasks.sync_integration(integration.pk, SyncRun.Trigger.PUSH)

    expect(page.get_by_text("Renommé dans Google Agenda")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="mis à jour")).to_have_count(1)
    assert navigations == []  # swapped in place: no reload, focus and scroll kept


def test_import_now_answers_at_once_stays_on_the_view_and_updates_when_done(
    page, sign_in, make_user, sandbox_settings, settings
):
    """ "Synchroniser maintenant" sends the sync to the background: the learner is back on the
    same week at once, told it runs (the button off meanwhile), and the calendar updates
    itself when it ends."""
    if connection.vendor != "postgresql":
        # The sync's thread writes while the live server's threads read: SQLite's shared
        # in-memory test database locks whole tables for that and refuses at once.
        pytest.skip("a background sync beside a live server needs PostgreSQL; .ci/run runs it")
    settings.CALENDAR_PAGE_REFRESH = 0.5
    demo = make_user("demo", password="demo")
    integration = connect(sandbox_settings, demo, "google")
    tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    event = (
        CalendarEvent.objects.filter(calendar__integration=integration, all_day=False)
        .exclude(response=CalendarEvent.Response.DECLINED)
        .order_by("start")
        .last()
    )
    account = sandbox_settings.store.account(integration.account_email)
    remote = account.calendars[event.calendar.external_id]
    changed = remote.events[event.external_id]
    changed.title = "Renommé avant l'import"
    sandbox_settings.store.save(account, remote, changed)
    sandbox_settings.add_fault("slow", endpoint="google.events.list", delay=1.5)
    week = f"/calendar/?view=week&date={event.start:%Y-%m-%d}"

    sign_in(demo, "demo")
    page.goto(week)
    page.get_by_role("button", name="Synchroniser maintenant").click()

    assert page.url.endswith(week)
    google = page.locator("#sync-google")
    expect(google).to_contain_text("Google Agenda")
    expect(google.get_by_text("Synchronisation en cours…")).to_be_visible()
    expect(page.get_by_role("button", name="Synchroniser maintenant")).to_be_disabled()
    expect(page.get_by_text("Renommé avant l'import")).to_be_visible(timeout=15_000)
    expect(page.get_by_text("Synchronisation en cours")).to_have_count(0)
    expect(google.get_by_text("Synchronisé à l'instant")).to_be_visible()
    expect(page.get_by_role("button", name="Synchroniser maintenant")).to_be_enabled()
    tasks.wait_for_background_syncs()
