"""Failures in the learner's words: each one provoked through the sandbox is recorded with its
code, said on the settings card and on the calendar page by the catalogue's sentence and its
action (never by the provider's text), given by the API as code and message, in the learner's
language, and shown to staff in the admin with the technical detail."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import pytest
import requests
from django.apps import apps
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import translation
from django.utils.functional import Promise

from accounts.models import Profile
from calendars import locking
from calendars.errors import (
    AppCredentialsRejected,
    AuthorizationDenied,
    CredentialsUnreadable,
    LockTimeout,
    ProviderError,
    RateLimited,
    ReconnectRequired,
    Refused,
    ScopeMissing,
    SyncTokenExpired,
    UndecryptableError,
)
from calendars.failures import FAILURES, Action, failure_by_code, failure_of, refused
from calendars.models import CalendarIntegration, SyncRun
from calendars.providers.google.oauth import CALENDAR_EVENTS
from calendars.sync import runs
from calendars.sync.runs import integration_run
from tests.calendars.calendar_helpers import LIST_ENDPOINT, held_elsewhere
from tests.calendars.client_helpers import BASE, error_of, said, sync_line, text_of
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("forget_exported_events", "quick_retries")

SETTINGS = reverse("settings_calendars")
CALENDAR = reverse("calendars:calendar")


def _sync(integration: CalendarIntegration) -> SyncRun | None:
    return integration_run(integration_id=integration.pk, trigger=SyncRun.Trigger.PERIODIC)


def _account(sandbox, integration):
    return sandbox.store.account(integration.account_email)


# --- provoking each failure through the sandbox --------------------------------------------------


@dataclass
class Case:
    """A failure as a learner meets it: what provokes it, and what the API answers an import
    asked for afterwards (None: an import alone does not meet it)."""

    code: str
    provider: str
    provoke: Callable[..., None]
    api_status: int | None


def _server_error(sandbox, integration, **_):
    sandbox.add_fault("server_error", endpoint=LIST_ENDPOINT[integration.provider], times=0)


def _unavailable(sandbox, integration, **_):
    sandbox.add_fault("unavailable", endpoint=LIST_ENDPOINT[integration.provider], times=0)


def _rate_limit(sandbox, integration, **_):
    sandbox.add_fault(
        "rate_limit", endpoint=LIST_ENDPOINT[integration.provider], times=0, retry_after=120
    )


def _rate_limit_403(sandbox, integration, **_):
    sandbox.add_fault("rate_limit_403", endpoint=LIST_ENDPOINT[integration.provider], times=0)


def _revoke(sandbox, integration, **_):
    account = _account(sandbox, integration)
    sandbox.provider_for(account).revoke_account(account)
    sandbox.provider_for(account).expire_access_tokens(account)


def _withdraw_events(sandbox, integration, **_):
    answer = requests.post(
        f"{sandbox.http_url}/_sandbox/api/accounts/{integration.account_email}/withdraw-scope",
        json={"scope": CALENDAR_EVENTS},
        timeout=5,
    )
    assert answer.status_code == 204


def _lose_the_key(sandbox, integration, settings, **_):
    settings.CALENDAR_TOKEN_KEY = "a-key-that-never-wrote-anything-" + "q" * 20


def _expire_the_apps_secret(sandbox, integration, settings, **_):
    answer = requests.put(
        f"{sandbox.http_url}/_sandbox/api/microsoft/apps/{settings.OUTLOOK_CLIENT_ID}",
        json={"secretExpired": True},
        timeout=5,
    )
    assert answer.status_code == 200
    account = _account(sandbox, integration)
    sandbox.provider_for(account).expire_access_tokens(account)


def _delete_an_imported_calendar(sandbox, integration, restore, **_):
    """The learner deletes, at the provider, a calendar they import."""
    calendar = integration.calendars.get(name="Équipe projet")
    calendar.import_enabled = True
    calendar.save()
    account = _account(sandbox, integration)
    kept = dict(account.calendars)
    with sandbox.store.lock:
        del account.calendars[calendar.external_id]

    def put_back():  # in its place: other tests take the account's calendars in order
        with sandbox.store.lock:
            account.calendars.clear()
            account.calendars.update(kept)

    restore(put_back)


def _make_the_target_read_only(sandbox, integration, restore, make_formation, **_):
    """Someone else owns the calendar receiving the formations and took the learner's right to
    write to it away."""
    make_formation(learners=(integration.user,))
    remote = _account(sandbox, integration).primary
    remote.can_edit = False
    restore(lambda: setattr(remote, "can_edit", True))


def _fail_the_writes(sandbox, integration, make_formation, **_):
    make_formation(learners=(integration.user,))
    sandbox.add_fault("server_error", endpoint="google.batch", times=0)


CASES = [
    Case("provider_error", "google", _server_error, 503),
    Case("provider_error", "outlook", _unavailable, 503),
    Case("rate_limited", "outlook", _rate_limit, 503),
    Case("rate_limited", "google", _rate_limit_403, 503),
    Case("needs_reconnect", "google", _revoke, 409),
    Case("needs_reconnect", "outlook", _revoke, 409),
    Case("missing_scope", "google", _withdraw_events, 409),
    Case("undecryptable", "outlook", _lose_the_key, 409),
    Case("service_unavailable", "outlook", _expire_the_apps_secret, 503),
    Case("calendar_gone", "google", _delete_an_imported_calendar, 502),
    Case("calendar_read_only", "google", _make_the_target_read_only, None),
    Case("export_failed", "google", _fail_the_writes, None),
]


@pytest.fixture
def restore():
    """Undoes, after the test, what a test changed in the session's sandbox."""
    undo: list[Callable[[], object]] = []
    yield undo.append
    for step in reversed(undo):
        step()


@pytest.fixture
def provoked(request, sandbox_settings, learner, settings, restore, make_formation):
    """The learner's integration after the case's failure ended a sync; with the run, and the
    technical text recorded for staff."""
    case: Case = request.param
    integration = connect(sandbox_settings, learner, case.provider)
    case.provoke(sandbox_settings, integration, settings=settings, restore=restore,
                 make_formation=make_formation)  # fmt: skip
    run = _sync(integration)
    integration.refresh_from_db()
    detail = run.error if run is not None and run.error else integration.last_error
    assert detail
    return case, integration, run, detail


def _ids(case: Case) -> str:
    return f"{case.code}-{case.provider}"


@pytest.mark.parametrize("provoked", CASES, ids=_ids, indirect=True)
def test_a_failure_is_recorded_with_its_code_and_said_in_the_learners_words(
    provoked, learner_client
):
    case, integration, run, detail = provoked
    recorded = run.error_code if run is not None else integration.last_error_code
    assert recorded == case.code

    for url in (SETTINGS, CALENDAR):
        page = learner_client.get(url)
        line = text_of_line(page, case.provider)
        assert said(case.code) in line, url
        assert detail not in text_of(page), url  # the technical text is for staff
    card = sync_line(learner_client.get(SETTINGS), case.provider)
    _assert_action(card, FAILURES[case.code], case.provider, on_card=True)
    _assert_action(sync_line(learner_client.get(CALENDAR), case.provider),
                   FAILURES[case.code], case.provider, on_card=False)  # fmt: skip


def text_of_line(page, provider: str) -> str:
    """Where `provider`'s syncs stand, as the learner reads it (references decoded)."""
    return html.unescape(sync_line(page, provider))


def _assert_action(line: str, failure, provider: str, *, on_card: bool) -> None:
    """The action the catalogue gives the failure, as a button (or link) beside it."""
    line = html.unescape(line)
    connect_form = f'action="{reverse("calendars:connect", args=[provider])}"'
    sync_form = f'action="{reverse("calendars:import_now")}"'
    if failure.action.reconnects:
        assert connect_form in line and f">{failure.action.label}</button>" in line
        assert ('name="missing" value="1"' in line) == (failure.action == Action.ALLOW)
    else:
        assert connect_form not in line
    if failure.stops_syncs:
        assert sync_form not in line  # no sync can run: no button that asks for one
    elif failure.action == Action.RETRY:
        assert sync_form in line and ">Réessayer</button>" in line
    if failure.action == Action.REFRESH and not on_card:  # the card has its own button
        refresh = reverse("settings_calendar_refresh", args=[provider])
        assert f'action="{refresh}"' in line and f">{failure.action.label}</button>" in line
    if failure.action == Action.CHOOSE and not on_card:  # the card holds the choice itself
        assert f'href="{SETTINGS}#integration-{provider}"' in line


@pytest.mark.parametrize("provoked", CASES, ids=_ids, indirect=True)
def test_the_api_gives_the_failures_code_and_sentence(provoked, learner_client):
    case, _integration, run, detail = provoked

    (body,) = learner_client.get(f"{BASE}/integrations").json()

    if run is not None:
        assert (body["lastRun"]["errorCode"], body["lastRun"]["error"]) == (
            case.code,
            said(case.code),
        )
    if FAILURES[case.code].action.reconnects:
        assert (body["lastErrorCode"], body["lastError"]) == (case.code, said(case.code))
    response = learner_client.get(f"{BASE}/integrations")
    assert detail not in response.text
    if case.api_status is not None:
        answer = learner_client.post(f"{BASE}/{case.provider}/import")
        error = error_of(answer, case.api_status)
        assert error == {"code": case.code, "message": said(case.code)}
        assert detail not in answer.text
        if case.provoke is _rate_limit:  # Graph's 429 says when to come back
            assert answer["Retry-After"] == "120"


def test_a_failure_the_learner_can_retry_says_a_retry_is_planned_only_when_one_is(
    sandbox_settings, learner, learner_client
):
    integration = connect(sandbox_settings, learner, "google")
    _server_error(sandbox_settings, integration)
    _sync(integration)
    planned = "Un nouvel essai est prévu automatiquement."
    assert planned in text_of_line(learner_client.get(SETTINGS), "google")

    CalendarIntegration.objects.filter(pk=integration.pk).update(sync_enabled=False)

    line = text_of_line(learner_client.get(SETTINGS), "google")
    assert said("provider_error") in line and planned not in line


def test_a_fault_of_ours_another_sync_met_is_said_to_every_learner_of_that_provider(
    sandbox_settings, learner, learner_client, make_user, settings
):
    """The provider refuses the application itself: learners whose own last sync went well
    are told too, and offered no button that could only be refused."""
    integration = connect(sandbox_settings, learner, "outlook")
    assert _sync(integration).error == ""
    other = connect(sandbox_settings, make_user(), "outlook", email="sam.nguyen@outlook.test")
    _expire_the_apps_secret(sandbox_settings, other, settings=settings)
    assert _sync(other).error_code == "service_unavailable"

    for url in (SETTINGS, CALENDAR):
        line = sync_line(learner_client.get(url), "outlook")
        assert said("service_unavailable") in html.unescape(line), url
        assert f'action="{reverse("calendars:import_now")}"' not in line
    answer = learner_client.post(f"{BASE}/outlook/import")
    assert error_of(answer, 503) == {
        "code": "service_unavailable",
        "message": said("service_unavailable"),
    }


def test_an_unexpected_error_is_recorded_as_unknown_and_said_so(
    sandbox_settings, learner, learner_client, monkeypatch
):
    integration = connect(sandbox_settings, learner, "google")

    def broken(**kwargs):
        raise RuntimeError("a bug, with internals: /srv/app/calendars/sync.py line 12")

    monkeypatch.setattr(runs, "integration_sync", broken)
    with pytest.raises(RuntimeError):
        _sync(integration)

    run = integration.sync_runs.get()
    assert run.error_code == "unknown" and run.error
    page = learner_client.get(SETTINGS)
    assert said("unknown") in text_of_line(page, "google")
    assert "internals" not in page.text and run.error not in text_of(page)


def test_a_run_cut_off_is_recorded_as_interrupted(sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "google")
    cut = SyncRun.objects.create(integration=integration, trigger="push", direction="both")

    _sync(integration)

    cut.refresh_from_db()
    assert cut.error_code == "interrupted" and cut.error
    assert failure_by_code(cut.error_code).action == Action.RETRY


def test_an_import_asked_while_a_sync_runs_is_sync_in_progress(
    sandbox_settings, learner, learner_client, settings
):
    settings.CALENDAR_EXPORT_LOCK_WAIT = 0.1
    integration = connect(sandbox_settings, learner, "outlook")

    with held_elsewhere(locking.integration_lock, integration.pk, wait=0):
        answer = learner_client.post(f"{BASE}/outlook/import")

    assert error_of(answer, 503) == {
        "code": "sync_in_progress",
        "message": said("sync_in_progress"),
    }


# --- the learner's language ----------------------------------------------------------------------


@contextmanager
def _in_english():
    with translation.override("en"):
        yield


@pytest.mark.parametrize("code", ["needs_reconnect", "missing_scope"])
def test_the_sentence_is_in_the_learners_language(
    sandbox_settings, learner, learner_client, code, request
):
    """The catalogue's sentences are translated when shown, in the language the learner chose
    (here the English ones the catalogue already holds)."""
    integration = connect(sandbox_settings, learner, "google")
    (_revoke if code == "needs_reconnect" else _withdraw_events)(sandbox_settings, integration)
    _sync(integration)
    english, french = said(code, "en"), said(code)
    with _in_english():
        label = str(FAILURES[code].action.label)
    assert english != french  # the English catalogue holds it

    Profile.objects.create(user=learner, language="en")
    request.addfinalizer(translation.deactivate)  # requests leave their language active

    for url in (SETTINGS, CALENDAR):
        page = learner_client.get(url)
        line = text_of_line(page, "google")
        assert english in line and french not in line
        assert f">{label}</button>" in line
    answer = learner_client.post(f"{BASE}/google/import")
    assert error_of(answer, 409) == {"code": code, "message": english}
    (body,) = learner_client.get(f"{BASE}/integrations").json()
    assert body["lastError"] == english


def test_every_sentence_is_translated_when_shown_not_when_the_catalogue_is_read():
    """Lazy: read in French at start-up, a sentence still follows the learner's language."""
    with _in_english():
        assert str(FAILURES["needs_reconnect"].message).startswith("Access was withdrawn")
    for failure in FAILURES.values():
        assert isinstance(failure.message, Promise), failure.code
        if failure.action:
            assert isinstance(failure.action.label, Promise), failure.code


# --- the catalogue -------------------------------------------------------------------------------


def test_codes_are_unique_short_and_every_refusal_in_the_code_is_in_the_catalogue():
    assert all(code == failure.code for code, failure in FAILURES.items())
    assert all(len(code) <= 32 for code in FAILURES)  # the columns that keep them
    source = "\n".join(
        path.read_text(encoding="utf-8")
        for path in (Path(django_settings.BASE_DIR) / "calendars").rglob("*.py")
    )
    used = set(re.findall(r'refused\(\s*"(\w+)"', source))
    used |= set(re.findall(r'_api_error\(\s*\d+,\s*"(\w+)"', source))
    used |= set(re.findall(r'code="(\w+)"', source))  # codes recorded on runs and integrations
    used |= set(re.findall(r'"(\w+)" if code == MISSING_SCOPE else "(\w+)"', source)[0])
    assert used and used <= set(FAILURES), used - set(FAILURES)
    with pytest.raises(KeyError):
        refused("not_a_code")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (LockTimeout("integration", 1.0), "sync_in_progress"),
        (UndecryptableError("x"), "undecryptable"),
        (CredentialsUnreadable("x"), "undecryptable"),
        (ScopeMissing("x"), "missing_scope"),
        (ReconnectRequired("x"), "needs_reconnect"),
        (ReconnectRequired("stored", code="missing_scope"), "missing_scope"),
        (AppCredentialsRejected("x"), "service_unavailable"),
        (AuthorizationDenied("x"), "denied"),
        (RateLimited("x", status=429), "rate_limited"),
        (ProviderError("x", status=503), "provider_error"),
        (ProviderError("unreachable"), "provider_error"),
        (SyncTokenExpired("x"), "provider_error"),
        (ProviderError("x", permanent=True, status=404), "calendar_gone"),
        (ProviderError("x", permanent=True, status=410), "calendar_gone"),
        (ProviderError("x", permanent=True, status=403), "calendar_gone"),
        (ProviderError("x", permanent=True, status=400), "unknown"),
        (ProviderError("x", code="export_failed"), "export_failed"),
        (Refused("Non.", code="denied"), "denied"),
        (RuntimeError("x"), "unknown"),
    ],
)
def test_failure_of_maps_each_error_to_its_code(error, code):
    assert failure_of(error).code == code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ProviderError("x", permanent=True, status=403), "calendar_read_only"),
        (ProviderError("x", permanent=True, status=404), "calendar_gone"),
        (ProviderError("x", permanent=True, status=400), "export_failed"),
        (ProviderError("x", status=500), "export_failed"),
        (RateLimited("x", status=429), "rate_limited"),
    ],
)
def test_a_write_refused_is_told_as_the_export_it_stopped(error, code):
    assert failure_of(error, exporting=True).code == code


def test_a_stored_code_no_catalogue_knows_is_unknown():
    assert failure_by_code("") is FAILURES["unknown"]
    assert failure_by_code("gone_since") is FAILURES["unknown"]


# --- staff ---------------------------------------------------------------------------------------


def test_staff_see_the_code_the_learners_sentence_and_the_technical_detail(
    sandbox_settings, learner, staff_client
):
    integration = connect(sandbox_settings, learner, "google")
    _server_error(sandbox_settings, integration)
    run = _sync(integration)
    sandbox_settings.clear_faults()  # a fault answers before the grant is even looked at
    _revoke(sandbox_settings, integration)
    _sync(integration)
    integration.refresh_from_db()
    assert "500" in run.error and integration.last_error

    run_page = text_of(staff_client.get(reverse("admin:calendars_syncrun_change", args=[run.pk])))
    assert "provider_error" in run_page
    assert said("provider_error") in run_page
    assert run.error in run_page
    history = text_of(staff_client.get(reverse("admin:calendars_syncrun_changelist")))
    assert "provider_error" in history
    change = reverse("admin:calendars_calendarintegration_change", args=[integration.pk])
    page = text_of(staff_client.get(change))
    assert "needs_reconnect" in page
    assert said("needs_reconnect") in page
    assert integration.last_error in page
    assert f"[provider_error] {run.error}" in page  # the recent runs


# --- rows recorded before the codes --------------------------------------------------------------

migration = import_module("calendars.migrations.0015_failure_codes")


def test_upgrading_gives_the_failures_recorded_before_their_code(learner, make_calendar):
    integration = make_calendar(learner).integration
    texts = {
        "Google answered 503.": "provider_error",
        "Microsoft Graph answered 429 (TooManyRequests).": "rate_limited",
        "Google's usage limit was reached.": "rate_limited",
        "Google: the authorization was revoked or expired.": "needs_reconnect",
        "Google: a permission the integration needs was withdrawn.": "missing_scope",
        "The stored credentials can no longer be read.": "undecryptable",
        "Microsoft refuses the application's credentials (AADSTS7000222: ...).": (
            "service_unavailable"
        ),
        "2 formation(s) could not be written; they are tried again at the next sync.": (
            "export_failed"
        ),
        "Google answered 404 (notFound).": "calendar_gone",
        "Another sync of this calendar was still running.": "sync_in_progress",
        "Interrompue avant la fin.": "interrupted",
        "Unexpected error (see the server's log).": "",
    }
    made = {
        text: SyncRun.objects.create(
            integration=integration, trigger="periodic", direction="both", error=text
        )
        for text in texts
    }
    succeeded = SyncRun.objects.create(integration=integration, trigger="periodic",
                                       direction="both")  # fmt: skip
    CalendarIntegration.objects.filter(pk=integration.pk).update(
        status="needs_reconnect", last_error="Marquée « à reconnecter » par l'équipe d'assistance."
    )

    migration.code_recorded_failures(apps, None)

    assert {text: SyncRun.objects.get(pk=run.pk).error_code for text, run in made.items()} == texts
    assert SyncRun.objects.get(pk=succeeded.pk).error_code == ""
    integration.refresh_from_db()
    assert integration.last_error_code == "needs_reconnect"
