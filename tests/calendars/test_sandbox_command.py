from __future__ import annotations

import socket

import pytest
from django.core.management import CommandError, call_command


def _needed() -> int:
    with pytest.raises(SystemExit) as exit_info:
        call_command("calendar_sandbox", needed=True)
    return exit_info.value.code


def test_sandbox_is_needed_without_credentials(settings):
    settings.CALENDAR_SANDBOX = False
    settings.GOOGLE_CLIENT_ID = settings.OUTLOOK_CLIENT_ID = ""
    assert _needed() == 0


def test_sandbox_is_not_needed_with_real_credentials(settings):
    settings.CALENDAR_SANDBOX = False
    settings.GOOGLE_CLIENT_ID = "real.apps.googleusercontent.com"
    assert _needed() == 1


def test_sandbox_is_needed_when_asked_for(settings):
    settings.CALENDAR_SANDBOX = True
    settings.GOOGLE_CLIENT_ID = "real.apps.googleusercontent.com"
    assert _needed() == 0


def test_busy_port_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match="Is a sandbox already running"):
            call_command("calendar_sandbox", port=port, tls_port=0, events=5, state_dir=tmp_path)
