"""Operator faults at the provider, provoked through the sandbox: an expired or wrong client
secret stops that provider's syncs and tells staff what to fix; a tenant that lets no member
consent tells the learner what to ask their administrator."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from calendars.errors import Refused
from calendars.models import CalendarIntegration, ProviderFault, SyncRun
from calendars.services.connection import integration_connect_finish, integration_connect_start
from calendars.services.faults import provider_faults, provider_sync_held
from calendars.sync.runs import integration_run
from sandbox.store import CONTOSO_TENANT_ID
from tests.calendars.connect_helpers import OUTLOOK_ACCOUNT, REDIRECT, connect
from tests.sandbox.microsoft.helpers import WORK_2, ConsentPage, open_consent, submit_consent


def _control(sandbox, path: str, body: dict) -> None:
    answer = requests.put(f"{sandbox.http_url}/_sandbox/api/microsoft/{path}", json=body, timeout=5)
    assert answer.status_code == 200, answer.text


def _expire_secret(sandbox, expired: bool = True) -> None:
    _control(sandbox, f"apps/{settings.OUTLOOK_CLIENT_ID}", {"secretExpired": expired})


def _expire_access_tokens(sandbox, integration) -> None:
    """Graph refuses the stored access token: the next call must refresh it."""
    account = sandbox.store.account(integration.account_email)
    sandbox.provider_for(account).expire_access_tokens(account)


def _sync(integration) -> SyncRun | None:
    return integration_run(integration_id=integration.pk, trigger=SyncRun.Trigger.PERIODIC)


@pytest.fixture
def outlook_down(sandbox_settings, learner):
    """A connected Outlook learner whose first sync after the secret expired has failed."""
    integration = connect(sandbox_settings, learner, "outlook")
    _expire_secret(sandbox_settings)
    _expire_access_tokens(sandbox_settings, integration)
    run = _sync(integration)
    return integration, run


def test_an_expired_client_secret_stops_outlook_syncs_and_says_what_to_fix(
    sandbox_settings, outlook_down, caplog
):
    integration, run = outlook_down

    assert "AADSTS7000222" in run.error
    assert "OUTLOOK_CLIENT_SECRET" in run.error
    assert settings.OUTLOOK_CLIENT_SECRET not in run.error
    fault = ProviderFault.objects.get()
    assert fault.provider == "outlook"
    assert "AADSTS7000222" in fault.detail
    # Not the learner's fault: nothing asks them to reconnect, no failure counted.
    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.CONNECTED
    assert integration.sync_failures == 0
    assert settings.OUTLOOK_CLIENT_SECRET not in caplog.text

    # The next syncs do not go to Microsoft at all: no retry storm.
    sandbox_settings.reset_counters()
    for _ in range(3):
        assert _sync(integration) is None
    assert sandbox_settings.count("microsoft.token") == 0
    assert sum(sandbox_settings.counters.values()) == 0
    assert SyncRun.objects.filter(integration=integration).count() == 1


def test_other_providers_go_on_syncing(sandbox_settings, outlook_down, make_user):
    other = connect(sandbox_settings, make_user("google-learner"), "google")

    run = _sync(other)

    assert run is not None and run.error == ""


def test_one_sync_probes_now_and_then_and_a_working_secret_ends_the_fault(
    sandbox_settings, outlook_down
):
    integration, _run = outlook_down
    ProviderFault.objects.update(probe_at=timezone.now() - timedelta(seconds=1))

    # Still expired: the probe fails, the next probe is later.
    probe = _sync(integration)
    assert probe is not None and "AADSTS7000222" in probe.error
    assert provider_sync_held("outlook")

    # Fixed at Microsoft (a new secret): the next probe refreshes and lifts the fault.
    _expire_secret(sandbox_settings, expired=False)
    ProviderFault.objects.update(probe_at=timezone.now() - timedelta(seconds=1))
    run = _sync(integration)
    assert run is not None and run.error == ""
    assert not ProviderFault.objects.exists()
    assert not provider_sync_held("outlook")


def test_configuring_another_secret_lifts_the_fault_at_once(
    sandbox_settings, outlook_down, settings
):
    assert provider_faults()

    settings.OUTLOOK_CLIENT_SECRET += "-new"

    assert provider_faults() == {}
    assert not ProviderFault.objects.exists()


def test_a_wrong_client_secret_is_an_operator_fault_too(
    sandbox_settings, learner, caplog, settings
):
    integration = connect(sandbox_settings, learner, "outlook")
    wrong = "not-the-secret-" + "x" * 20
    settings.OUTLOOK_CLIENT_SECRET = wrong
    _expire_access_tokens(sandbox_settings, integration)

    with caplog.at_level(logging.INFO):
        run = _sync(integration)

    assert "AADSTS7000215" in run.error
    assert ProviderFault.objects.filter(provider="outlook").exists()
    assert wrong not in run.error
    assert wrong not in caplog.text


def test_learners_are_told_the_service_is_unavailable_and_cannot_start_a_connection(
    sandbox_settings, outlook_down, learner_client
):
    page = learner_client.get(reverse("settings_calendars"))

    text = page.content.decode()
    assert "momentanément indisponible" in text
    assert "Vous n'avez rien à faire" in text
    assert "AADSTS" not in text
    assert "Reconnecter" not in text
    with pytest.raises(Refused) as refused:
        integration_connect_start(
            user=outlook_down[0].user, provider_name="outlook", redirect_uri=REDIRECT
        )
    assert refused.value.code == "service_unavailable"


def test_staff_see_a_banner_on_every_admin_page_with_what_to_fix(
    sandbox_settings, outlook_down, staff_client
):
    for url in (reverse("admin:index"), reverse("admin:calendars_syncrun_changelist")):
        text = staff_client.get(url).content.decode()
        assert 'id="provider-faults"' in text
        assert "AADSTS7000222" in text
        assert "OUTLOOK_CLIENT_SECRET" in text
    ProviderFault.objects.all().delete()  # what "delete" in the admin does
    assert 'id="provider-faults"' not in staff_client.get(reverse("admin:index")).content.decode()


def test_a_new_connection_refused_for_the_apps_credentials_is_service_unavailable(
    sandbox_settings, learner
):
    _expire_secret(sandbox_settings)
    url = integration_connect_start(
        user=learner, provider_name="outlook", redirect_uri=REDIRECT.format("outlook")
    )
    back = submit_consent(open_consent(url), OUTLOOK_ACCOUNT, "accept")
    params = dict(parse_qsl(urlsplit(back.headers["Location"]).query))

    with pytest.raises(Refused) as refused:
        integration_connect_finish(user=learner, provider_name="outlook", params=params)

    assert refused.value.code == "service_unavailable"
    assert not CalendarIntegration.objects.exists()
    assert ProviderFault.objects.filter(provider="outlook").exists()


def test_a_tenant_that_needs_admin_approval_tells_the_learner_what_to_send(
    sandbox_settings, learner
):
    # Alex's organisation lets no member consent; Alex never consented before.
    requests.post(f"{sandbox_settings.http_url}/_sandbox/api/accounts/{WORK_2}/revoke", timeout=5)
    _control(sandbox_settings, f"tenants/{CONTOSO_TENANT_ID}", {"userConsent": False})
    url = integration_connect_start(
        user=learner, provider_name="outlook", redirect_uri=REDIRECT.format("outlook")
    )
    approval = submit_consent(open_consent(url), WORK_2, "accept")
    assert "Need admin approval" in approval.text
    back = submit_consent(ConsentPage(approval.status_code, approval.text, url), None, "back")
    params = dict(parse_qsl(urlsplit(back.headers["Location"]).query))

    with pytest.raises(Refused) as refused:
        integration_connect_finish(user=learner, provider_name="outlook", params=params)

    assert refused.value.code == "admin_approval_required"
    message = str(refused.value.message)
    assert "administrateur" in message
    assert settings.OUTLOOK_CLIENT_ID in message
    assert "Calendars.ReadWrite" in message
    assert not CalendarIntegration.objects.exists()
    # Once the administrator approved the application, the same learner connects.
    _control(
        sandbox_settings,
        f"tenants/{CONTOSO_TENANT_ID}",
        {"userConsent": False, "adminConsent": [settings.OUTLOOK_CLIENT_ID]},
    )
    assert connect(sandbox_settings, learner, "outlook", WORK_2).account_email == WORK_2
