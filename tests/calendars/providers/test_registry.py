"""The registry names the providers without loading them: the models, pages and commands use
it, and a provider's client libraries load when it is first used."""

from __future__ import annotations

from calendars.providers import get_provider
from calendars.providers.names import PROVIDER_CHOICES, PROVIDERS
from tests.processes import run_python

CLIENT_LIBRARIES = ("googleapiclient", "google_auth_oauthlib", "msal", "caldav")


def test_setting_django_up_loads_no_provider_client_library():
    code = (
        "import sys, django; django.setup(); "
        f"print(sorted(name for name in {CLIENT_LIBRARIES!r} if name in sys.modules))"
    )
    result = run_python("-c", code, DJANGO_SETTINGS_MODULE="config.settings")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_every_registered_provider_loads_under_its_name():
    assert [name for name, _title in PROVIDER_CHOICES] == list(PROVIDERS)
    for name in PROVIDERS:
        provider = get_provider(name)
        assert provider.name == name
        assert provider.oauth is not None and provider.calendars is not None


def test_the_registry_says_which_providers_are_polled_as_their_packages_do():
    for name, info in PROVIDERS.items():
        assert info.polled == (get_provider(name).push is None), name


def test_only_password_providers_sign_in_with_a_password():
    for name, info in PROVIDERS.items():
        oauth = type(get_provider(name).oauth)
        has_own = "sign_in" in vars(oauth)
        assert has_own == (info.connection == "password"), name
