from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from tests.processes import run_python


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_python("manage.py", *args, **env)


def test_debug_off_without_secret_key_fails_naming_the_variable():
    result = _manage("check", DEBUG="false", SECRET_KEY="", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "The environment variable SECRET_KEY is required when DEBUG is off" in result.stderr


def test_debug_off_without_calendar_token_key_fails_naming_the_variable():
    result = _manage(
        "check",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        CALENDAR_TOKEN_KEY="",
        ALLOWED_HOSTS="example.com",
    )
    assert result.returncode != 0
    assert "The environment variable CALENDAR_TOKEN_KEY is required" in result.stderr


def test_old_keys_are_read_without_surrounding_spaces(monkeypatch):
    import subprocess

    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django.conf import settings; print(settings.CALENDAR_TOKEN_OLD_KEYS)"],
        env={**__import__("os").environ, "CALENDAR_TOKEN_OLD_KEYS": "first, second,"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout.strip().splitlines()[-1] == "['first', 'second']"


def test_debug_off_without_allowed_hosts_fails_naming_the_variable():
    result = _manage(
        "check",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        CALENDAR_TOKEN_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="",
    )
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is required" in result.stderr


def test_deploy_check_is_clean_with_production_values():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        CALENDAR_TOKEN_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_database_url_selects_postgresql():
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])",
        DATABASE_URL="postgres://u:p@127.0.0.1:5432/db",
    )
    assert result.stdout.strip().endswith("django.db.backends.postgresql"), result.stderr


ENDPOINTS = (
    "from django.conf import settings as s; print('|'.join([s.GOOGLE_AUTH_URI, s.GOOGLE_TOKEN_URI,"
    " s.GOOGLE_REVOKE_URI, s.GOOGLE_API_URL, s.OUTLOOK_AUTHORITY, s.OUTLOOK_GRAPH_URL,"
    " s.OUTLOOK_CA_BUNDLE, s.GOOGLE_CLIENT_ID, s.OUTLOOK_CLIENT_ID]))"
)
PROVIDER_VARIABLES = {
    "CALENDAR_SANDBOX", "GOOGLE_AUTH_URI", "GOOGLE_TOKEN_URI", "GOOGLE_REVOKE_URI",
    "GOOGLE_API_URL", "OUTLOOK_AUTHORITY", "OUTLOOK_GRAPH_URL", "OUTLOOK_CA_BUNDLE",
    "GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET", "OUTLOOK_CLIENT_ID", "OUTLOOK_CLIENT_SECRET",
}  # fmt: skip


def _endpoints(**env: str) -> list[str]:
    for name in PROVIDER_VARIABLES - env.keys():
        env[name] = ""
    env.setdefault("CALENDAR_SANDBOX", "false")
    result = _manage("shell", "-c", ENDPOINTS, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].split("|")


def test_provider_endpoints_default_to_the_real_services():
    assert _endpoints() == [
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://oauth2.googleapis.com/token",
        "https://oauth2.googleapis.com/revoke",
        "https://www.googleapis.com/",
        "https://login.microsoftonline.com/common",
        "https://graph.microsoft.com/v1.0",
        "",
        "",
        "",
    ]


def test_calendar_sandbox_points_every_endpoint_at_the_sandbox():
    values = _endpoints(CALENDAR_SANDBOX="true")
    assert values[:6] == [
        "http://127.0.0.1:8400/o/oauth2/v2/auth",
        "http://127.0.0.1:8400/token",
        "http://127.0.0.1:8400/revoke",
        "http://127.0.0.1:8400/",
        "https://127.0.0.1:8401/common",
        "https://127.0.0.1:8401/v1.0",
    ]
    assert values[6].endswith("var/sandbox/ca.pem")
    assert values[7:] == [
        "sandbox-client.apps.googleusercontent.test",
        "5a4d1b6e-0c1f-4f7e-9d2a-5a4d1b6e0c1f",
    ]


def test_explicit_endpoint_wins_over_the_sandbox():
    values = _endpoints(
        CALENDAR_SANDBOX="true",
        OUTLOOK_AUTHORITY="https://login.microsoftonline.us/contoso.onmicrosoft.com",
        GOOGLE_CLIENT_ID="real-id.apps.googleusercontent.com",
    )
    assert values[4] == "https://login.microsoftonline.us/contoso.onmicrosoft.com"
    assert values[7] == "real-id.apps.googleusercontent.com"


PRODUCTION = {"DEBUG": "false", "ALLOWED_HOSTS": "example.com"}
SANDBOX_INSTALLED = "from django.conf import settings; print('sandbox' in settings.INSTALLED_APPS)"


def _sandbox_installed(**env: str) -> bool:
    if env.get("DEBUG") == "false":
        env.update(
            SECRET_KEY=secrets.token_urlsafe(50), CALENDAR_TOKEN_KEY=secrets.token_urlsafe(50)
        )
    result = _manage("shell", "-c", SANDBOX_INSTALLED, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "True"


def test_development_installs_the_sandbox_app_for_its_command():
    assert _sandbox_installed(CALENDAR_SANDBOX="false")


def test_production_does_not_load_the_sandbox():
    assert not _sandbox_installed(CALENDAR_SANDBOX="false", **PRODUCTION)


def test_calendar_sandbox_installs_the_sandbox_app_whatever_debug_says():
    assert _sandbox_installed(CALENDAR_SANDBOX="true", **PRODUCTION)


@pytest.mark.parametrize("calendar_sandbox", ["false", "true"])
def test_an_install_without_the_sandbox_package_starts_without_it(calendar_sandbox):
    # As in an install of the built package, which leaves sandbox/ out.
    code = (
        "import sys; sys.modules['sandbox'] = None; import django; django.setup(); "
        "from django.conf import settings; print('sandbox' in settings.INSTALLED_APPS)"
    )
    result = run_python(
        "-c", code, DJANGO_SETTINGS_MODULE="config.settings", CALENDAR_SANDBOX=calendar_sandbox
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def _database_settings(**env: str) -> str:
    result = run_python(
        "manage.py",
        "shell",
        "-c",
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'])",
        **env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_production_keeps_database_connections_open_and_checks_them():
    production = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CALENDAR_TOKEN_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "example.com",
    }
    assert _database_settings(**production) == "60 True"
    assert _database_settings(**{**production, "CONN_MAX_AGE": "0"}) == "0 True"
    assert _database_settings(DEBUG="true") == "0 True"
