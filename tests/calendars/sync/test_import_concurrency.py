"""One import at a time per calendar; overlapping ones coalesce (the command is safe to run
while the site and other imports run)."""

from __future__ import annotations

import pytest
from django.db import connection

from calendars import locking
from calendars.models import Calendar, CalendarEvent
from calendars.sync.importing import calendar_import
from tests.calendars.calendar_helpers import at_once, held_elsewhere
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("wide_window")


@pytest.mark.django_db(transaction=True)
def test_an_import_finding_another_one_running_returns_at_once(sandbox_settings, make_user):
    integration = connect(sandbox_settings, make_user(), "google")
    calendar = integration.calendars.get(is_primary=True)
    with held_elsewhere(locking.calendar_import_lock, calendar.pk):
        sandbox_settings.reset_counters()
        result = calendar_import(calendar=calendar)

    assert result.busy == 1
    assert sandbox_settings.count("google.events.list") == 0
    assert not CalendarEvent.objects.exists()

    after = calendar_import(calendar=calendar)  # the lock is free again
    assert after.busy == 0 and after.created > 0


@pytest.mark.django_db(transaction=True)
def test_two_imports_of_one_calendar_at_once_leave_exactly_the_providers_events(
    sandbox_settings, make_user, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; .ci/run runs this test against it")
    integration = connect(sandbox_settings, make_user(), "outlook")
    calendar = integration.calendars.get(is_primary=True)
    results = at_once(2, lambda: calendar_import(calendar=Calendar.objects.get(pk=calendar.pk)))

    assert sorted(r.busy for r in results) in ([0, 0], [0, 1])
    imported = list(CalendarEvent.objects.filter(calendar=calendar).values_list("external_id"))
    assert imported and len(imported) == len(set(imported))
    # A clean full import afterwards finds nothing to add or remove: the concurrent imports
    # left exactly what one import alone leaves.
    Calendar.objects.filter(pk=calendar.pk).update(sync_token="", resume_from="")
    again = calendar_import(calendar=Calendar.objects.get(pk=calendar.pk))
    assert (again.created, again.deleted) == (0, 0)
