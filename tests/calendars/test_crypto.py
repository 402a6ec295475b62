"""Credentials at rest: encrypted, under their own key, rotatable."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from calendars.errors import UndecryptableError
from calendars.models import CalendarIntegration
from calendars.services.credentials import integration_access_token
from tests.calendars.connect_helpers import connect


def _raw_database(tmp_path) -> bytes:
    """The database as it lies on disk: the SQLite file, or PostgreSQL's dump."""
    if connection.vendor == "sqlite":
        path = tmp_path / "copy.sqlite3"
        with connection.cursor() as cursor:
            cursor.execute("VACUUM INTO %s", [str(path)])
        return path.read_bytes()
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            pytest.fail("pg_dump is needed to inspect the PostgreSQL database")
        environment = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
        dump = subprocess.run(
            [pg_dump, "--data-only", "-h", db.get("HOST") or "127.0.0.1",
             "-p", str(db.get("PORT") or 5432), "-U", db.get("USER") or "postgres", db["NAME"]],
            env=environment, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        return dump.stdout
    pytest.fail(f"no raw view of a {connection.vendor} database")


@pytest.mark.django_db(transaction=True)
def test_database_holds_no_token_in_clear(sandbox_settings, make_user, tmp_path):
    connect(sandbox_settings, make_user(), "google")
    integration = connect(sandbox_settings, make_user(), "outlook")
    integration_access_token(integration=integration, force=True)  # a rotated one too
    issued = sandbox_settings.google.issued_tokens() | sandbox_settings.microsoft.issued_tokens()
    assert len(issued) >= 4

    raw = _raw_database(tmp_path)

    assert b"calendars_calendarintegration" in raw or connection.vendor == "postgresql"
    leaked = [token for token in issued if token.encode() in raw]
    assert leaked == []


def test_rotating_secret_key_loses_nothing(sandbox_settings, learner, settings):
    integration = connect(sandbox_settings, learner, "google")
    settings.SECRET_KEY = "a-completely-different-secret-key-" + "x" * 30
    fresh = CalendarIntegration.objects.get(pk=integration.pk)
    assert fresh.get_credentials()["refresh_token"]
    assert integration_access_token(integration=fresh, force=True)


def test_key_rotation_keeps_every_integration_working(
    sandbox_settings, learner, make_user, settings
):
    connected = [
        connect(sandbox_settings, learner, "google"),
        connect(sandbox_settings, make_user(), "outlook"),
    ]
    old_key = settings.CALENDAR_TOKEN_KEY
    settings.CALENDAR_TOKEN_KEY = "the-new-calendar-token-key-" + "n" * 30
    settings.CALENDAR_TOKEN_OLD_KEYS = [old_key]

    call_command("rotate_calendar_key")

    settings.CALENDAR_TOKEN_OLD_KEYS = []  # the old key is gone: everything reads with the new
    for integration in connected:
        fresh = CalendarIntegration.objects.get(pk=integration.pk)
        assert integration_access_token(integration=fresh, force=True)


def test_credentials_need_their_key(sandbox_settings, learner, settings):
    integration = connect(sandbox_settings, learner, "google")
    settings.CALENDAR_TOKEN_KEY = "a-key-that-never-wrote-anything-" + "z" * 20
    loaded = CalendarIntegration.objects.get(pk=integration.pk)  # loading never fails on it
    assert loaded.credentials == ""
    with pytest.raises(UndecryptableError):
        loaded.get_credentials()
    with pytest.raises(CommandError, match="could not be read"):
        call_command("rotate_calendar_key")


def test_credentials_never_appear_in_serialized_data(sandbox_settings, learner):
    import io

    connect(sandbox_settings, learner, "google")
    out = io.StringIO()
    call_command("dumpdata", "calendars", stdout=out)
    assert '"credentials": "[encrypted]"' in out.getvalue()
    assert not [t for t in sandbox_settings.google.issued_tokens() if t in out.getvalue()]
