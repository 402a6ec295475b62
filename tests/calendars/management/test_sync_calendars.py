"""The sync_calendars command (and import_calendars' record of its runs), against the sandbox."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.calendars.calendar_helpers import LIST_ENDPOINT
from tests.calendars.connect_helpers import connect


def test_sync_command_syncs_and_records(sandbox_settings, learner, capsys):
    integration = connect(sandbox_settings, learner, "google")
    call_command("sync_calendars", "--user", learner.username)
    run = integration.sync_runs.get()
    assert (run.trigger, run.direction) == ("command", "both")
    assert f"{run.created} created" in capsys.readouterr().out

    call_command("import_calendars", "--provider", "google")
    assert integration.sync_runs.first().direction == "import"


def test_sync_command_fails_when_a_sync_fails(sandbox_settings, learner, settings):
    settings.CALENDAR_RETRY_ATTEMPTS = 1
    connect(sandbox_settings, learner, "outlook")
    sandbox_settings.add_fault("server_error", endpoint=LIST_ENDPOINT["outlook"], times=0)
    with pytest.raises(SystemExit) as exit_:
        call_command("sync_calendars")
    assert exit_.value.code == 1
