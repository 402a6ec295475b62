"""Importing on demand: the calendar page's button and the API."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from calendars import tasks
from calendars.models import CalendarEvent, SyncRun
from sandbox.store import Event, new_google_id
from tests.calendars.calendar_helpers import LIST_ENDPOINT
from tests.calendars.client_helpers import said, sync_line, words_of
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("quick_retries")


def _sandbox_event(sandbox, integration, title):
    account = sandbox.store.account(integration.account_email)
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    event_id = new_google_id()
    event = Event(id=event_id, calendar_id=account.primary.id, ical_uid=f"{event_id}@t",
                  title=title, start=start, end=start + timedelta(hours=1))  # fmt: skip
    sandbox.store.save(account, account.primary, event)
    return event


@pytest.fixture
def background(db):
    """The button's syncs run in threads of this process (no broker in the tests): each test
    waits for them before it ends, whatever happens."""
    yield tasks.wait_for_background_syncs
    tasks.wait_for_background_syncs()


@pytest.mark.django_db(transaction=True)
def test_import_now_answers_at_once_and_the_sync_runs_in_the_background(
    sandbox_settings, learner, learner_client, background
):
    if connection.vendor != "postgresql":
        # The page is read while the sync's thread writes: SQLite's shared in-memory test
        # database locks whole tables for that and refuses at once ("table is locked").
        pytest.skip("a page read beside a background sync needs PostgreSQL; .ci/run runs it")
    integration = connect(sandbox_settings, learner, "google")
    _sandbox_event(sandbox_settings, integration, "<script>alert(1)</script> Réunion")
    # The provider takes a while: the request does not wait for it.
    sandbox_settings.add_fault("slow", endpoint=LIST_ENDPOINT["google"], delay=1.5)

    response = learner_client.post(
        reverse("calendars:import_now"), {"view": "week", "date": "2027-04-08"}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("calendars:calendar") + "?view=week&date=2027-04-08"
    assert not SyncRun.objects.filter(finished_at__isnull=False).exists()  # not waited for
    page = learner_client.get(response["Location"])
    assert "Synchronisation de Google Agenda lancée" in page.text
    assert "Google Agenda</strong> — " in sync_line(page, "google")
    assert "Synchronisation en cours…" in sync_line(page, "google")
    assert re.search(r'<button type="submit" class="button button-secondary" disabled>', page.text)
    again = learner_client.post(reverse("calendars:import_now"), follow=True)
    assert "Une synchronisation de Google Agenda est déjà en cours" in again.text

    background()

    run = SyncRun.objects.get(trigger=SyncRun.Trigger.MANUAL)
    assert run.finished_at is not None and run.error == ""
    assert CalendarEvent.objects.filter(calendar__integration=integration).exists()
    agenda = learner_client.get(reverse("calendars:calendar"), {"view": "agenda"})
    assert "Synchronisation en cours" not in agenda.text
    assert "Synchronisé à l'instant" in words_of(sync_line(agenda, "google"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Réunion" in agenda.text
    assert "<script>alert(1)</script>" not in agenda.text


@pytest.mark.django_db(transaction=True)
def test_a_change_made_at_the_provider_appears_after_the_next_import(
    sandbox_settings, learner, learner_client, background
):
    integration = connect(sandbox_settings, learner, "google")
    event = _sandbox_event(sandbox_settings, integration, "Avant")
    learner_client.post(reverse("calendars:import_now"))
    background()
    account = sandbox_settings.store.account(integration.account_email)
    event.title = "Après"
    sandbox_settings.store.save(account, account.primary, event)

    learner_client.post(reverse("calendars:import_now"))
    background()

    assert CalendarEvent.objects.get(external_id=event.id).title == "Après"


@pytest.mark.django_db(transaction=True)
def test_a_failed_import_is_said_on_the_calendar_page(
    sandbox_settings, learner, learner_client, background
):
    connect(sandbox_settings, learner, "outlook")
    sandbox_settings.add_fault("unavailable", endpoint="graph.delta", times=0)

    learner_client.post(reverse("calendars:import_now"))
    background()

    page = learner_client.get(reverse("calendars:calendar"))
    line = sync_line(page, "outlook")
    assert said("provider_error") in html.unescape(line)
    assert re.search(r'name="provider" value="outlook">.*>Réessayer</button>', line, re.S)
    # The technical detail ("Microsoft Graph answered 503 (serviceNotAvailable).") stays in
    # the admin. (Not just "503": the page's version stamp is hexadecimal.)
    assert "503" not in line
    assert "serviceNotAvailable" not in page.text
    assert "answered" not in page.text


def test_api_import_returns_the_counts(sandbox_settings, learner, learner_client):
    connect(sandbox_settings, learner, "outlook")
    response = learner_client.post(
        "/api/calendar-integration/outlook/import",
        HTTP_X_CSRFTOKEN="x",
        content_type="application/json",
    )
    # The session client of the tests skips CSRF checks: the API's own tests cover them.
    assert response.status_code == 200, response.content
    counts = response.json()
    assert set(counts) == {"created", "updated", "deleted", "skipped"}
    assert counts["created"] == CalendarEvent.objects.count() > 0
    again = learner_client.post("/api/calendar-integration/outlook/import").json()
    assert again == {"created": 0, "updated": 0, "deleted": 0, "skipped": 0}


def test_api_import_of_a_provider_not_connected_is_404(sandbox_settings, learner_client):
    response = learner_client.post("/api/calendar-integration/google/import")
    assert response.status_code == 404
    assert response.json()["error"]["code"]


def test_api_import_of_a_revoked_grant_is_409(sandbox_settings, learner, learner_client):
    integration = connect(sandbox_settings, learner, "google")
    account = sandbox_settings.store.account(integration.account_email)
    sandbox_settings.google.revoke_account(account)
    sandbox_settings.google.expire_access_tokens(account)
    response = learner_client.post("/api/calendar-integration/google/import")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "needs_reconnect"


def test_import_now_with_nothing_to_import_says_so(sandbox_settings, learner, learner_client):
    """And the learner stays where they were."""
    integration = connect(sandbox_settings, learner, "google")
    integration.status = "needs_reconnect"
    integration.save()
    response = learner_client.post(
        reverse("calendars:import_now"), {"view": "agenda", "date": "2027-01-04"}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == [
        "Aucun agenda à synchroniser : connectez ou reconnectez-en un dans les paramètres."
    ]
    assert response.redirect_chain[-1][0].endswith("?view=agenda&date=2027-01-04")


def test_a_view_or_date_that_is_not_one_comes_back_to_the_default(learner, learner_client):
    response = learner_client.post(
        reverse("calendars:import_now"), {"view": "<x>", "date": "2027-13-40"}
    )
    assert response["Location"] == reverse("calendars:calendar")
