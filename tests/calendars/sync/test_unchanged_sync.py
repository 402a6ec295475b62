"""What a sync that finds nothing changed costs: the most common run by far (every
integration, every interval). A fixed number of SQL statements, whatever the learner imports
and exports, and one provider request per imported calendar.

Counted as the workers run it (benchmarks/sync_benchmark.py): a task sent by beat, which
marked the integration, in a transaction of its own (no test transaction, so no savepoints),
every statement the database sees, the locks' included on PostgreSQL, transaction control
(which SQLite sends as statements) apart.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from calendars import tasks
from calendars.models import PushChannel, SyncRun
from calendars.sync.runs import integration_sync_request
from formations.models import Enrollment
from tests.calendars.calendar_helpers import LIST_ENDPOINT
from tests.calendars.connect_helpers import connect

pytestmark = [
    pytest.mark.usefixtures("forget_exported_events", "no_waiting"),
    pytest.mark.django_db(transaction=True),
]

MOST_STATEMENTS = 10  # issue "Speed near the floor": at most 10, a fixed number


def _unchanged_sync(sandbox, integration):
    """Runs a sync as beat sends it, after two that brought everything in line; returns the
    statements it sent."""
    tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    tasks.sync_integration(integration.pk, SyncRun.Trigger.PERIODIC)
    integration_sync_request(integration_id=integration.pk)
    sandbox.reset_counters()
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        if sql != "BEGIN":  # SQLite's, for each page's transaction; counted apart
            statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        tasks.sync_integration(integration.pk, SyncRun.Trigger.PERIODIC, requested=True)
    run = integration.sync_runs.order_by("-pk").first()
    assert (run.created, run.updated, run.deleted, run.error) == (0, 0, 0, "")
    return statements


def _enrol(learner, make_formation, count):
    start = timezone.now() + timedelta(days=3)
    for day in range(count):
        formation = make_formation(start=start + timedelta(days=day))
        Enrollment.objects.create(formation=formation, learner=learner)


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_an_unchanged_sync_sends_a_fixed_number_of_statements(
    sandbox_settings, learner, make_formation, provider
):
    _enrol(learner, make_formation, 2)
    integration = connect(sandbox_settings, learner, provider)
    few = _unchanged_sync(sandbox_settings, integration)
    assert sandbox_settings.count(LIST_ENDPOINT[provider]) == 1  # the one imported calendar
    # On SQLite the locks are the process's own: PostgreSQL's two advisory-lock statements
    # (taken, released) are not sent.
    most = MOST_STATEMENTS if connection.vendor == "postgresql" else MOST_STATEMENTS - 2
    assert len(few) <= most, "\n".join(few)

    # More formations, more calendars imported: the same statements, one listing more.
    _enrol(learner, make_formation, 5)
    integration.calendars.update(import_enabled=True)
    imported = integration.calendars.count()
    more = _unchanged_sync(sandbox_settings, integration)
    assert sandbox_settings.count(LIST_ENDPOINT[provider]) == imported > 1
    assert sorted(more) == sorted(few)


def test_open_push_channels_add_no_statement(sandbox_settings, learner, make_formation, settings):
    """With push on and the channels open and fresh, the sync reads nothing more to know
    they need nothing."""
    _enrol(learner, make_formation, 2)
    integration = connect(sandbox_settings, learner, "google")
    without = _unchanged_sync(sandbox_settings, integration)
    settings.CALENDAR_PUSH_ENABLED = True
    settings.CALENDAR_WEBHOOK_URL = "http://127.0.0.1:9"  # loopback: the sandbox accepts it
    tasks.sync_integration(integration.pk, SyncRun.Trigger.PERIODIC)  # opens the channels
    assert PushChannel.objects.filter(integration=integration).exists()

    with_channels = _unchanged_sync(sandbox_settings, integration)

    assert sorted(with_channels) == sorted(without)
    assert sandbox_settings.count("google.events.watch") == 0


def test_a_channel_due_for_renewal_is_still_renewed(
    sandbox_settings, learner, make_formation, settings
):
    settings.CALENDAR_PUSH_ENABLED = True
    settings.CALENDAR_WEBHOOK_URL = "http://127.0.0.1:9"
    integration = connect(sandbox_settings, learner, "google")
    tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    channel = PushChannel.objects.get(integration=integration)
    soon = timezone.now() + timedelta(seconds=settings.CALENDAR_PUSH_RENEW_BEFORE / 2)
    PushChannel.objects.filter(pk=channel.pk).update(expires_at=soon)
    sandbox_settings.reset_counters()

    tasks.sync_integration(integration.pk, SyncRun.Trigger.PERIODIC)

    assert sandbox_settings.count("google.events.watch") == 1
    assert PushChannel.objects.get(integration=integration).expires_at > soon


def test_a_formation_enrolled_in_since_is_exported_by_the_next_sync(
    sandbox_settings, learner, make_formation
):
    """The rows of the formations already written stand for all of them only while the
    learner is enrolled in no other: one enrolment more, and the sync lists the formations and
    writes the new one."""
    _enrol(learner, make_formation, 2)
    integration = connect(sandbox_settings, learner, "outlook")
    tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    assert integration.exports.count() == 2
    # Written in bulk, as an import of enrolments does: no signal sends an export of its own.
    Enrollment.objects.bulk_create([Enrollment(formation=make_formation(), learner=learner)])

    tasks.sync_integration(integration.pk, SyncRun.Trigger.PERIODIC)

    assert integration.exports.filter(create_sent=True).count() == 3
    assert integration.sync_runs.order_by("-pk").first().formations_created == 1
