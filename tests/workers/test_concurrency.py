"""Several workers, several tasks for one learner's calendar at once: runs never overlap and
coalesce, Outlook's limit of 4 requests at once per mailbox holds, and a changed formation
reaches every enrolled learner's calendar."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from calendars.models import SyncRun
from calendars.tasks import dispatch_sync, sync_integration
from formations.models import Enrollment
from tests.calendars.connect_helpers import connect
from tests.sandbox.google import helpers as google_helpers
from tests.sandbox.microsoft import helpers as microsoft_helpers
from tests.workers.helpers import (
    assert_each_formation_once,
    assert_imports_match,
    assert_never_overlapping,
    wait_for,
    whole_minute,
)


def _succeeded(runs) -> bool:
    return [run.error for run in runs] == ["" for _ in runs]


def test_syncs_sent_at_once_to_two_workers_coalesce_into_few_runs_that_never_overlap(
    workers, sandbox_settings, make_user
):
    with workers.inline():
        integration = connect(sandbox_settings, make_user(), "google")
    workers.start(concurrency=2, count=2)
    # Each run lists the calendar slowly: the other tasks find it under way.
    sandbox_settings.add_fault("slow", endpoint="google.events.list", delay=1.5, times=0)

    for _ in range(10):
        sync_integration.delay(integration.pk, SyncRun.Trigger.MANUAL)
    last_sent = timezone.now()
    workers.wait_idle()

    runs = list(SyncRun.objects.filter(integration=integration))
    assert 1 <= len(runs) <= 4, [(r.started_at.time(), r.finished_at.time()) for r in runs]
    assert _succeeded(runs)
    assert_never_overlapping(runs)
    # None of the ten was lost: a run started after the last one was sent.
    assert max(run.started_at for run in runs) >= last_sent
    assert_imports_match(sandbox_settings, integration)


def test_syncs_and_formation_exports_at_once_stay_under_outlooks_mailbox_concurrency_limit(
    workers, sandbox_settings, make_user, make_formation
):
    with workers.inline():
        learner = make_user()
        formations = [
            make_formation(start=whole_minute(1 + i % 40, 8 + i % 10), learners=(learner,))
            for i in range(100)
        ]
        integration = connect(sandbox_settings, learner, "outlook")
    workers.start(concurrency=4)
    # Slow batches keep a sync's writes in flight while more tasks arrive.
    sandbox_settings.add_fault("slow", endpoint="graph.batch", delay=0.5, times=0)

    for _ in range(3):
        sync_integration.delay(integration.pk, SyncRun.Trigger.MANUAL)
    wait_for(
        lambda: sandbox_settings.count("graph.batch") >= 4,
        timeout=60,
        what=lambda: f"no export under way\n{workers.logs()}",
    )
    # Changed while they are being written: each save sends propagate_formation, which sends
    # an export task for the learner's calendar.
    for formation in formations[:10]:
        formation.title += " (nouvelle salle)"
        formation.start += timedelta(hours=1)
        formation.end += timedelta(hours=1)
        formation.save()
    workers.wait_idle()

    assert sandbox_settings.count("graph.batch") >= 5  # 100 formations, 20 a batch
    assert sandbox_settings.count("graph.throttled.mailbox_concurrency") == 0
    runs = SyncRun.objects.filter(integration=integration)
    assert _succeeded(runs)
    assert_never_overlapping(runs)
    assert_each_formation_once(sandbox_settings, integration, formations)
    assert_imports_match(sandbox_settings, integration)


ACCOUNTS = [
    ("google", google_helpers.CAMILLE),
    ("google", google_helpers.ALEX),
    ("google", google_helpers.SAM),
    ("outlook", microsoft_helpers.WORK),
    ("outlook", microsoft_helpers.WORK_2),
]


def test_a_moved_formation_reaches_the_calendar_of_every_enrolled_learner(
    workers, sandbox_settings, make_user, make_formation
):
    with workers.inline():
        formation = make_formation(start=whole_minute(5))
        integrations = []
        for provider, email in ACCOUNTS:
            learner = make_user()
            Enrollment.objects.create(learner=learner, formation=formation)
            integrations.append(connect(sandbox_settings, learner, provider, email=email))
    workers.start(concurrency=2, count=2)
    for integration in integrations:
        dispatch_sync(integration.pk, SyncRun.Trigger.CONNECT)
    workers.wait_idle()
    for integration in integrations:
        assert_each_formation_once(sandbox_settings, integration, [formation])

    formation.start += timedelta(days=1, hours=2)
    formation.end += timedelta(days=1, hours=3)
    formation.save()  # the only call: the signal sends propagate_formation
    workers.wait_idle(timeout=60)

    for integration in integrations:
        assert_each_formation_once(sandbox_settings, integration, [formation])
        moved = SyncRun.objects.filter(integration=integration, trigger=SyncRun.Trigger.FORMATION)
        assert [(run.direction, run.updated, run.error) for run in moved] == [
            (SyncRun.Direction.EXPORT, 1, "")
        ]
