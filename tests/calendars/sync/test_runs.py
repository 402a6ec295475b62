"""Background sync without a worker (tasks run inline): runs recorded, one at a time per
integration, requests coalesced, failures retried after growing delays, due syncs sent by
beat, history, the settings page, and rounds cut off by a worker's death (the admin's "sync
now": test_admin.py; the sync command: management/test_sync_calendars.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from calendars import locking, tasks
from calendars.models import CalendarIntegration, SyncRun
from calendars.sync import results, retry, runs
from calendars.sync.runs import integration_run
from tests.calendars.calendar_helpers import LIST_ENDPOINT, held_elsewhere
from tests.calendars.client_helpers import said, text_of
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("forget_exported_events", "no_waiting")


def _primary_events(integration):
    return integration.calendars.get(is_primary=True).events.count()


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_sync_is_recorded_with_what_it_changed(sandbox_settings, learner, provider, settings):
    integration = connect(sandbox_settings, learner, provider)
    before = timezone.now()

    tasks.sync_integration(integration.pk, SyncRun.Trigger.MANUAL)

    run = integration.sync_runs.get()
    assert (run.trigger, run.direction, run.error) == ("manual", "both", "")
    assert run.created == _primary_events(integration) > 0
    assert run.requests >= 1
    assert before <= run.started_at <= run.finished_at
    integration.refresh_from_db()
    assert integration.sync_failures == 0
    assert integration.last_synced_at >= run.started_at
    interval = timedelta(seconds=settings.CALENDAR_SYNC_INTERVAL)
    assert run.finished_at + interval <= integration.next_sync_at <= timezone.now() + interval
    assert integration.sync_requested_at is None

    # Nothing changed: the next run changes nothing and lists each calendar once.
    sandbox_settings.reset_counters()
    tasks.sync_integration(integration.pk, SyncRun.Trigger.PERIODIC)
    second = integration.sync_runs.first()
    assert (second.created, second.updated, second.deleted) == (0, 0, 0)
    assert (
        sandbox_settings.count(LIST_ENDPOINT[provider])
        == integration.calendars.filter(import_enabled=True).count()
    )


def test_failed_syncs_are_retried_after_growing_delays(sandbox_settings, learner, settings):
    settings.CALENDAR_RETRY_ATTEMPTS = 1  # no retries inside a run: one failure, one run
    integration = connect(sandbox_settings, learner, "google")
    sandbox_settings.add_fault("server_error", endpoint=LIST_ENDPOINT["google"], times=0)

    delays = []
    for failures in (1, 2, 3, 4):
        tasks.sync_integration(integration.pk, SyncRun.Trigger.RETRY)
        integration.refresh_from_db()
        run = integration.sync_runs.first()
        assert "500" in run.error and run.finished_at is not None
        assert integration.sync_failures == failures
        delay = (integration.next_sync_at - run.finished_at).total_seconds()
        # One minute doubled at each failure, with jitter: between half and all of it.
        ceiling = 60 * 2 ** (failures - 1)
        assert ceiling / 2 - 1 <= delay <= ceiling + 1
        delays.append(delay)
    assert delays[-1] > delays[0]

    sandbox_settings.clear_faults()
    tasks.sync_integration(integration.pk, SyncRun.Trigger.RETRY)
    integration.refresh_from_db()
    assert integration.sync_runs.first().error == ""
    assert integration.sync_failures == 0
    assert integration.status == CalendarIntegration.Status.CONNECTED


def test_a_retry_waits_at_least_what_the_provider_asks(sandbox_settings, learner, settings):
    settings.CALENDAR_RETRY_ATTEMPTS = 1
    integration = connect(sandbox_settings, learner, "outlook")
    sandbox_settings.add_fault(
        "rate_limit", endpoint=LIST_ENDPOINT["outlook"], times=0, retry_after=1800
    )
    tasks.sync_integration(integration.pk, SyncRun.Trigger.PERIODIC)
    integration.refresh_from_db()
    run = integration.sync_runs.get()
    assert "429" in run.error
    assert integration.next_sync_at >= run.finished_at + timedelta(seconds=1800)


def test_retry_delays_are_jittered_and_capped(settings):
    settings.CALENDAR_SYNC_RETRY_MAX = 3600
    delays = {retry.retry_delay(30) for _ in range(50)}
    assert all(1800 <= d <= 3600 for d in delays)
    assert len(delays) > 40  # spread, so that syncs failing together do not retry together
    assert retry.retry_delay(1, retry_after=7200) == 7200


def test_a_lost_grant_waits_for_the_learner(sandbox_settings, learner, settings):
    integration = connect(sandbox_settings, learner, "google")
    sandbox_settings.google.revoke_account(
        sandbox_settings.store.account(integration.account_email)
    )
    sandbox_settings.google.expire_access_tokens(
        sandbox_settings.store.account(integration.account_email)
    )
    tasks.sync_integration(integration.pk, SyncRun.Trigger.PERIODIC)
    integration.refresh_from_db()
    assert integration.needs_reconnect
    assert integration.sync_failures == 0  # not retried: only a new consent helps
    assert tasks.sync_due() == 0


def test_a_request_while_a_run_holds_the_integration_is_left_to_it(sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "google")
    with held_elsewhere(locking.integration_lock, integration.pk, wait=0):  # a running sync
        tasks.dispatch_sync(integration.pk, SyncRun.Trigger.PUSH)
        assert runs.integration_run(integration_id=integration.pk, trigger="push") is None
    assert not integration.sync_runs.exists()
    integration.refresh_from_db()
    assert integration.sync_requested_at is not None  # for the running sync's next round

    # The task sent for the request runs it, once: the second one finds it done.
    tasks.sync_integration(integration.pk, SyncRun.Trigger.PUSH, requested=True)
    tasks.sync_integration(integration.pk, SyncRun.Trigger.PUSH, requested=True)
    assert integration.sync_runs.count() == 1
    integration.refresh_from_db()
    assert integration.sync_requested_at is None


def test_a_request_made_during_a_run_makes_it_go_round_again(
    sandbox_settings, learner, monkeypatch
):
    integration = connect(sandbox_settings, learner, "google")
    real_sync = runs.integration_sync
    calls = []

    def sync_then_request(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:  # a notification arrives while the first round runs
            runs.integration_sync_request(integration_id=integration.pk)
        return real_sync(**kwargs)

    monkeypatch.setattr(runs, "integration_sync", sync_then_request)
    pending = []
    run = runs.integration_run(
        integration_id=integration.pk, trigger="push", on_pending=lambda: pending.append(1)
    )
    assert len(calls) == 2 and run is not None
    assert list(integration.sync_runs.values_list("trigger", flat=True)) == ["push", "push"]
    assert not pending  # the second round covered it


def test_exporting_some_formations_then_covers_a_request_made_meanwhile(
    sandbox_settings, learner, make_formation
):
    integration = connect(sandbox_settings, learner, "outlook")
    formation = make_formation(learners=(learner,))
    runs.integration_sync_request(integration_id=integration.pk)
    tasks.sync_integration(
        integration.pk, SyncRun.Trigger.FORMATION, formation_uids=[str(formation.uid)]
    )
    # The export of the formation, then a full round for the request found waiting.
    assert list(integration.sync_runs.order_by("pk").values_list("direction", flat=True)) == [
        "export",
        "both",
    ]


def test_beat_sends_the_due_syncs_and_claims_them(sandbox_settings, learner, make_user):
    due = connect(sandbox_settings, learner, "google")
    later = connect(sandbox_settings, learner, "outlook")
    off = connect(sandbox_settings, make_user("bruno"), "google", email="sam.nguyen@gmail.test")
    now = timezone.now()
    CalendarIntegration.objects.filter(pk=due.pk).update(next_sync_at=now - timedelta(seconds=1))
    CalendarIntegration.objects.filter(pk=later.pk).update(next_sync_at=now + timedelta(hours=1))
    CalendarIntegration.objects.filter(pk=off.pk).update(sync_enabled=False, next_sync_at=None)

    assert tasks.sync_due() == 1
    assert list(SyncRun.objects.values_list("integration", "trigger")) == [(due.pk, "periodic")]
    assert tasks.sync_due() == 0  # claimed: not sent again at the next tick


def test_beat_retries_a_failed_integration_with_the_retry_trigger(sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "google")
    CalendarIntegration.objects.filter(pk=integration.pk).update(
        sync_failures=3, status=CalendarIntegration.Status.ERROR
    )
    assert tasks.sync_due() == 1
    run = integration.sync_runs.get()
    assert (run.trigger, run.error) == ("retry", "")
    integration.refresh_from_db()
    assert (integration.sync_failures, integration.status) == (0, "connected")


def test_formation_changes_are_exported_by_tasks(
    sandbox_settings, learner, make_formation, django_capture_on_commit_callbacks
):
    integration = connect(sandbox_settings, learner, "google")
    with django_capture_on_commit_callbacks(execute=True):
        formation = make_formation(learners=(learner,))
    with django_capture_on_commit_callbacks(execute=True):
        formation.title = "Nouveau titre"
        formation.save()
    runs = list(integration.sync_runs.order_by("pk").values_list("trigger", "direction"))
    assert runs[-1] == ("formation", "export")
    exported = integration.exports.get()
    assert exported.external_id


def test_the_add_to_my_calendar_button_is_recorded(sandbox_settings, learner, make_formation):
    integration = connect(sandbox_settings, learner, "outlook")
    formation = make_formation(learners=(learner,))
    runs.formation_export(integration=integration, formation=formation)
    run = integration.sync_runs.get()
    assert (run.trigger, run.direction, run.created, run.error) == ("manual", "export", 1, "")


def test_old_runs_are_pruned(sandbox_settings, learner, settings):
    integration = connect(sandbox_settings, learner, "google")
    old = SyncRun.objects.create(
        integration=integration,
        trigger="periodic",
        direction="both",
        started_at=timezone.now() - timedelta(days=settings.CALENDAR_SYNC_HISTORY_DAYS + 1),
    )
    recent = SyncRun.objects.create(integration=integration, trigger="periodic", direction="both")
    assert tasks.prune_history() == 1
    assert list(SyncRun.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not SyncRun.objects.filter(pk=old.pk).exists()


def test_a_run_cut_off_is_closed_by_the_next(sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "google")
    cut = SyncRun.objects.create(integration=integration, trigger="push", direction="both")
    tasks.sync_integration(integration.pk, SyncRun.Trigger.PERIODIC)
    cut.refresh_from_db()
    assert cut.finished_at is not None and cut.error


# --- the settings page ------------------------------------------------------------------------


def test_settings_page_shows_the_last_sync(sandbox_settings, learner, learner_client, settings):
    integration = connect(sandbox_settings, learner, "google")
    page = learner_client.get(reverse("settings_calendars")).content.decode()
    assert "Pas encore de synchronisation." in page

    tasks.sync_integration(integration.pk, SyncRun.Trigger.MANUAL)
    run = integration.sync_runs.get()
    page = learner_client.get(reverse("settings_calendars")).content.decode()
    assert "Dernière synchronisation" in page
    assert run.created > 1
    # What the counts count, with plurals by ngettext (no "(s)"), and only what changed.
    assert f"{run.created} événements importés." in page
    assert "(s)" not in page

    settings.CALENDAR_RETRY_ATTEMPTS = 1
    sandbox_settings.add_fault("server_error", endpoint=LIST_ENDPOINT["google"], times=0)
    tasks.sync_integration(integration.pk, SyncRun.Trigger.PERIODIC)
    page = text_of(learner_client.get(reverse("settings_calendars")))
    assert "Elle n'a pas abouti." in page
    assert said("provider_error") in page  # why, in the learner's words
    assert "Google answered 500" in integration.sync_runs.first().error
    assert "answered 500" not in page  # the technical detail is for staff
    assert "Un nouvel essai est prévu automatiquement." in page


def test_settings_page_shows_only_the_learners_own_runs(
    sandbox_settings, learner_client, make_user
):
    other = make_user("bruno")
    integration = connect(sandbox_settings, other, "google", email="sam.nguyen@gmail.test")
    SyncRun.objects.create(
        integration=integration, trigger="manual", direction="both", created=987654,
        finished_at=timezone.now(),
    )  # fmt: skip
    assert "987654" not in learner_client.get(reverse("settings_calendars")).content.decode()


# --- rounds cut off ---------------------------------------------------------------------------
# A task delivered again after its worker died mid-sync (tests/workers/ kill real workers):
# the round it had started cleared its request, yet covered nothing.


@pytest.fixture
def integration(sandbox_settings, learner):
    return connect(sandbox_settings, learner, "google")


def _open_run(integration):
    """What a worker killed in the middle of a round leaves: its run open, the request that
    sent its task cleared when the round began."""
    CalendarIntegration.objects.filter(pk=integration.pk).update(sync_requested_at=None)
    return SyncRun.objects.create(
        integration=integration, trigger=SyncRun.Trigger.MANUAL, direction=SyncRun.Direction.BOTH
    )


def test_a_requested_sync_whose_round_was_cut_off_runs_it_again(integration):
    cut = _open_run(integration)

    run = integration_run(
        integration_id=integration.pk, trigger=SyncRun.Trigger.MANUAL, requested=True
    )

    assert run is not None and run.succeeded
    cut.refresh_from_db()
    assert cut.finished_at is not None and cut.error == "Interrompue avant la fin."


def test_a_requested_sync_covered_by_a_finished_round_does_nothing(integration):
    finished = _open_run(integration)
    runs._finish(finished, results.ImportResult(), results.ExportResult(), error="")

    run = integration_run(
        integration_id=integration.pk, trigger=SyncRun.Trigger.MANUAL, requested=True
    )

    assert run is None
    assert list(SyncRun.objects.filter(integration=integration)) == [finished]


@pytest.mark.django_db(transaction=True)
def test_a_requested_sync_covered_by_a_round_under_way_does_nothing(integration, monkeypatch):
    monkeypatch.setattr(runs, "CUT_OFF_LOCK_WAIT", 0.2, raising=False)
    under_way = _open_run(integration)
    # The worker running that round, in another session.
    with held_elsewhere(locking.integration_lock, integration.pk, wait=0):
        run = integration_run(
            integration_id=integration.pk, trigger=SyncRun.Trigger.MANUAL, requested=True
        )

    assert run is None
    assert list(SyncRun.objects.filter(integration=integration)) == [under_way]
    integration.refresh_from_db()
    assert integration.sync_requested_at is None  # nothing more asked of the round


def test_failed_formation_exports_neither_count_nor_put_off_the_next_sync(
    sandbox_settings, learner, make_formation, settings
):
    """A short outage while 13 formations change: 13 export tasks fail. They are not 13
    failures in a row, and the sync due in 5 minutes stays due then (it was put off by hours)."""
    settings.CALENDAR_RETRY_ATTEMPTS = 1
    integration = connect(sandbox_settings, learner, "google")
    due = timezone.now() + timedelta(minutes=5)
    CalendarIntegration.objects.filter(pk=integration.pk).update(next_sync_at=due)
    formations = [make_formation(learners=(learner,)) for _ in range(13)]
    sandbox_settings.add_fault("unavailable", endpoint="google.batch", times=0)

    for formation in formations:
        run = integration_run(
            integration_id=integration.pk,
            trigger=SyncRun.Trigger.FORMATION,
            direction=SyncRun.Direction.EXPORT,
            formation_uids={formation.uid},
        )
        assert run is not None and run.error

    integration.refresh_from_db()
    assert integration.sync_failures == 0
    assert integration.next_sync_at <= due
    sandbox_settings.clear_faults()
    run = integration_run(integration_id=integration.pk, trigger=SyncRun.Trigger.RETRY)
    assert run.error == "" and integration.exports.filter(remote_version="").count() == 0
    assert integration.exports.count() == 13


def test_a_failed_formation_export_asks_for_a_retry_when_none_is_due(
    sandbox_settings, learner, make_formation, settings
):
    settings.CALENDAR_RETRY_ATTEMPTS = 1
    integration = connect(sandbox_settings, learner, "google")
    CalendarIntegration.objects.filter(pk=integration.pk).update(
        next_sync_at=timezone.now() + timedelta(hours=2)
    )
    formation = make_formation(learners=(learner,))
    sandbox_settings.add_fault("unavailable", endpoint="google.batch", times=0)

    integration_run(
        integration_id=integration.pk,
        trigger=SyncRun.Trigger.FORMATION,
        direction=SyncRun.Direction.EXPORT,
        formation_uids={formation.uid},
    )

    integration.refresh_from_db()
    assert integration.next_sync_at <= timezone.now() + timedelta(minutes=1)


def test_an_enrollment_moved_to_another_learner_follows_in_both_calendars(
    sandbox_settings, learner, make_user, make_formation, django_capture_on_commit_callbacks
):
    """Staff move an enrollment from one learner to another in the admin (an enrollment
    edited in place): the first learner's calendar loses the formation, the second gains it."""
    from formations.models import Enrollment
    from tests.calendars.calendar_helpers import events_of

    other = make_user("camille")
    first = connect(sandbox_settings, learner, "google")
    second = connect(sandbox_settings, other, "outlook")
    with django_capture_on_commit_callbacks(execute=True):
        formation = make_formation(learners=(learner,))
    remote = {
        integration.pk: sandbox_settings.store.account(integration.account_email).calendars[
            integration.calendars.get(is_export_target=True).external_id
        ]
        for integration in (first, second)
    }
    assert len(events_of(remote[first.pk], formation, "google")) == 1

    with django_capture_on_commit_callbacks(execute=True):
        enrollment = Enrollment.objects.get(formation=formation)
        enrollment.learner = other
        enrollment.save()

    assert events_of(remote[first.pk], formation, "google") == []
    assert len(events_of(remote[second.pk], formation, "outlook")) == 1


def test_deleting_a_formation_sends_one_propagation(
    sandbox_settings, learner, make_user, make_formation, django_capture_on_commit_callbacks,
    monkeypatch,
):  # fmt: skip
    learners = [learner, make_user("b"), make_user("c")]
    integrations = [connect(sandbox_settings, user, "google") for user in learners]
    with django_capture_on_commit_callbacks(execute=True):
        formation = make_formation(learners=tuple(learners))
    assert all(i.exports.filter(remote_version__gt="").count() == 1 for i in integrations)
    sent = []
    real = tasks.propagate_formation.delay
    monkeypatch.setattr(
        tasks.propagate_formation, "delay", lambda *a, **k: (sent.append((a, k)), real(*a, **k))
    )

    with django_capture_on_commit_callbacks(execute=True):
        formation.delete()

    assert sent == [((str(formation.uid),), {"learner_ids": None})]
    assert all(not i.exports.exists() for i in integrations)


def test_whether_a_run_is_open_is_found_without_reading_the_history(learner, make_calendar):
    """Every run asks it; an integration keeps a month of runs (one every interval)."""
    integration = make_calendar(learner).integration
    done = timezone.now()
    SyncRun.objects.bulk_create(
        SyncRun(integration=integration, trigger="periodic", direction="both", finished_at=done)
        for _ in range(2000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    plan = SyncRun.objects.filter(integration=integration, finished_at__isnull=True).explain()

    assert "syncrun_open_by_integration" in plan
