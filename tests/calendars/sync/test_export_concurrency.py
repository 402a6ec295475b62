"""Exports of one learner's calendar never overlap: a double click, two workers, or the
site and a command at once leave one event per formation."""

from __future__ import annotations

import pytest
from django.db import connection

from calendars import locking
from calendars.models import CalendarIntegration, FormationExport
from calendars.sync.exporting import integration_export
from calendars.sync.runs import formation_export
from formations.models import Formation
from tests.calendars.calendar_helpers import at_once, events_of, held_elsewhere
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("forget_exported_events")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_double_click_exports_once(sandbox_settings, make_user, make_formation, provider):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; .ci/run runs this test against it")
    learner = make_user()
    integration = connect(sandbox_settings, learner, provider)
    # Only the clicks export (the enrollment itself would, with automatic export on).
    CalendarIntegration.objects.filter(pk=integration.pk).update(export_enabled=False)
    formation = make_formation(learners=(learner,))
    remote = sandbox_settings.store.account(integration.account_email).calendars[
        integration.calendars.get(is_export_target=True).external_id
    ]

    results = at_once(
        2,
        lambda: formation_export(
            integration=CalendarIntegration.objects.get(pk=integration.pk),
            formation=Formation.objects.get(pk=formation.pk),
        ),
    )

    assert len(events_of(remote, formation, provider)) == 1
    # The second waited for the first, then found nothing left to do.
    assert sorted((r.created, r.unchanged) for r in results) == [(0, 1), (1, 0)]
    assert {r.event_ids[str(formation.uid)] for r in results} == {
        events_of(remote, formation, provider)[0].id
    }


@pytest.mark.django_db(transaction=True)
def test_an_export_waits_for_the_running_one_and_gives_up_after_the_lock_wait(
    sandbox_settings, make_user, make_formation, settings
):
    settings.CALENDAR_EXPORT_LOCK_WAIT = 0.3
    learner = make_user()
    integration = connect(sandbox_settings, learner, "google")
    CalendarIntegration.objects.filter(pk=integration.pk).update(export_enabled=False)
    formation = make_formation(learners=(learner,))
    with held_elsewhere(locking.integration_lock, integration.pk):
        sandbox_settings.reset_counters()
        waited = formation_export(integration=integration, formation=formation)

    assert waited.busy and not waited.event_ids
    assert sandbox_settings.count("google.batch") == 0
    after = formation_export(integration=integration, formation=formation)
    assert after.created == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_exporting_many_formations_at_once_leave_one_event_each(
    sandbox_settings, make_user, make_formation
):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent workers need PostgreSQL; .ci/run runs this test against it")
    learner = make_user()
    integration = connect(sandbox_settings, learner, "outlook")
    CalendarIntegration.objects.filter(pk=integration.pk).update(export_enabled=False)
    formations = [make_formation(learners=(learner,)) for _ in range(30)]
    CalendarIntegration.objects.filter(pk=integration.pk).update(export_enabled=True)
    remote = sandbox_settings.store.account(integration.account_email).calendars[
        integration.calendars.get(is_export_target=True).external_id
    ]

    results = at_once(
        2,
        lambda: integration_export(integration=CalendarIntegration.objects.get(pk=integration.pk)),
    )

    assert sum(r.created for r in results) == 30
    for formation in formations:
        assert len(events_of(remote, formation, "outlook")) == 1
    assert FormationExport.objects.filter(integration=integration).count() == 30


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_the_formation_button_during_a_running_export_waits_for_it(
    sandbox_settings, make_user, make_formation, provider, monkeypatch, settings
):
    """The export has planned its rows (the formation's among them, not yet written) when the
    learner presses the formation's button: the button's row work waits for the export, so
    neither inserts the row the other is inserting."""
    import threading
    import time

    from calendars.sync import exporting

    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; .ci/run runs this test against it")
    settings.CALENDAR_EXPORT_LOCK_WAIT = 30
    learner = make_user()
    integration = connect(sandbox_settings, learner, provider)
    # Exported by the run below only (the enrollment itself would, with automatic export on).
    CalendarIntegration.objects.filter(pk=integration.pk).update(export_enabled=False)
    formation = make_formation(learners=(learner,))
    CalendarIntegration.objects.filter(pk=integration.pk).update(export_enabled=True)
    remote = sandbox_settings.store.account(integration.account_email).calendars[
        integration.calendars.get(is_export_target=True).external_id
    ]
    planned, go = threading.Event(), threading.Event()
    real_new_export = exporting.new_export

    def new_export_then_pause(*args, **kwargs):
        row = real_new_export(*args, **kwargs)
        if threading.current_thread().name == "export":  # planned, the row not yet inserted
            planned.set()
            go.wait(timeout=30)
        return row

    monkeypatch.setattr(exporting, "new_export", new_export_then_pause)
    errors, results = [], {}

    def in_thread(name, work):
        def run():
            try:
                results[name] = work()
            except BaseException as error:
                errors.append(error)
            finally:
                connection.close()

        thread = threading.Thread(target=run, name=name)
        thread.start()
        return thread

    running = in_thread(
        "export",
        lambda: integration_export(integration=CalendarIntegration.objects.get(pk=integration.pk)),
    )
    assert planned.wait(timeout=30)
    button = in_thread(
        "button",
        lambda: formation_export(
            integration=CalendarIntegration.objects.get(pk=integration.pk),
            formation=Formation.objects.get(pk=formation.pk),
        ),
    )
    time.sleep(0.5)  # the button's work, before the fix, inserted the row here
    go.set()
    running.join(timeout=60)
    button.join(timeout=60)

    assert errors == []
    assert len(events_of(remote, formation, provider)) == 1
    assert FormationExport.objects.filter(formation_uid=formation.uid).count() == 1
    assert (results["export"].created, results["button"].unchanged) == (1, 1)
