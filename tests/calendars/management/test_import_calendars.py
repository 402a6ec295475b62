from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from calendars.models import CalendarEvent, CalendarIntegration
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("quick_retries")


def _run(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_calendars", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue(), err.getvalue()


def test_imports_every_learner_with_a_summary_and_progress(sandbox_settings, make_user):
    connect(sandbox_settings, make_user("lea"), "google")
    connect(sandbox_settings, make_user("tom"), "outlook")

    code, out, err = _run()

    assert code == 0
    created = CalendarEvent.objects.count()
    assert created > 0
    assert "2 integration(s) in" in out
    assert f"{created} created" in out and "0 failed." in out
    assert "[##############################] 2/2" in err


def test_user_and_provider_narrow_the_import(sandbox_settings, make_user):
    lea, tom = make_user("lea"), make_user("tom", email="tom@example.com")
    connect(sandbox_settings, lea, "google")
    connect(sandbox_settings, tom, "google", email="alex.martin@gmail.test")
    connect(sandbox_settings, tom, "outlook")

    code, out, _ = _run("--user", "tom@example.com", "--provider", "outlook")

    assert code == 0 and "1 integration(s)" in out
    owners = CalendarEvent.objects.values_list(
        "calendar__integration__provider", "calendar__integration__user__username"
    )
    imported = set(owners)
    assert imported == {("outlook", "tom")}


def test_a_failing_integration_makes_the_exit_status_non_zero(sandbox_settings, make_user):
    connect(sandbox_settings, make_user("lea"), "google")
    connect(sandbox_settings, make_user("tom"), "outlook")
    sandbox_settings.add_fault("server_error", endpoint="graph.delta", times=0)

    code, out, err = _run()

    assert code == 1
    assert "1 failed." in out
    assert "tom / outlook" in err
    assert CalendarEvent.objects.filter(calendar__integration__provider="google").exists()


def test_integrations_needing_reconnection_or_without_import_are_left_alone(
    sandbox_settings, make_user
):
    lea = connect(sandbox_settings, make_user("lea"), "google")
    tom = connect(sandbox_settings, make_user("tom"), "outlook")
    CalendarIntegration.objects.filter(pk=lea.pk).update(status="needs_reconnect")
    CalendarIntegration.objects.filter(pk=tom.pk).update(import_enabled=False)
    code, out, _ = _run()
    assert code == 0 and "0 integration(s)" in out
    assert not CalendarEvent.objects.exists()


def test_an_unknown_learner_is_an_error(db):
    with pytest.raises(CommandError, match="No learner"):
        call_command("import_calendars", "--user", "nobody")


def test_running_twice_changes_nothing_the_second_time(sandbox_settings, make_user):
    connect(sandbox_settings, make_user("lea"), "google")
    _run()
    before = sorted(CalendarEvent.objects.values_list("external_id", "updated_at"))
    code, out, _ = _run()
    assert code == 0 and "0 created, 0 updated, 0 deleted" in out
    assert sorted(CalendarEvent.objects.values_list("external_id", "updated_at")) == before
