from __future__ import annotations

import socket

import pytest
from django.core.management import CommandError, call_command

from sandbox.constants import (
    GOOGLE_CLIENT_ID,
    GOOGLE_CLIENT_SECRET,
    OUTLOOK_CLIENT_ID,
    OUTLOOK_CLIENT_SECRET,
)
from sandbox.core import Sandbox


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


def test_sandbox_knows_the_clients_the_settings_name(settings, tmp_path, monkeypatch):
    settings.GOOGLE_CLIENT_ID = "site.apps.googleusercontent.test"
    settings.GOOGLE_CLIENT_SECRET = "site-google-secret"
    settings.OUTLOOK_CLIENT_ID = "0b9e4a6c-5d1f-4c3e-8a2b-0b9e4a6c5d1f"
    settings.OUTLOOK_CLIENT_SECRET = "site-outlook-secret"
    built = []

    def refuse_to_listen(self, *args):
        built.append(self)
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(Sandbox, "start", refuse_to_listen)
    with pytest.raises(CommandError):
        call_command("calendar_sandbox", events=5, state_dir=tmp_path)
    (sandbox,) = built
    assert sandbox.options.google_clients == {
        GOOGLE_CLIENT_ID: GOOGLE_CLIENT_SECRET,
        "site.apps.googleusercontent.test": "site-google-secret",
    }
    assert sandbox.options.outlook_clients == {
        OUTLOOK_CLIENT_ID: OUTLOOK_CLIENT_SECRET,
        "0b9e4a6c-5d1f-4c3e-8a2b-0b9e4a6c5d1f": "site-outlook-secret",
    }
