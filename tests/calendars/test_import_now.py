"""Importing on demand: the calendar page's button and the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from calendars.models import CalendarEvent
from sandbox.store import Event, new_google_id
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


def test_import_now_brings_new_events_onto_the_calendar_page(
    sandbox_settings, learner, learner_client
):
    integration = connect(sandbox_settings, learner, "google")
    _sandbox_event(sandbox_settings, integration, "<script>alert(1)</script> Réunion")

    response = learner_client.post(reverse("calendars:import_now"), follow=True)

    assert response.redirect_chain[-1][0] == reverse("calendars:calendar")
    assert "Import terminé" in response.text
    assert CalendarEvent.objects.filter(calendar__integration=integration).exists()
    week = learner_client.get(reverse("calendars:calendar"), {"view": "agenda"})
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Réunion" in week.text
    assert "<script>alert(1)</script>" not in week.text


def test_a_change_made_at_the_provider_appears_after_the_next_import(
    sandbox_settings, learner, learner_client
):
    integration = connect(sandbox_settings, learner, "google")
    event = _sandbox_event(sandbox_settings, integration, "Avant")
    learner_client.post(reverse("calendars:import_now"))
    account = sandbox_settings.store.account(integration.account_email)
    event.title = "Après"
    sandbox_settings.store.save(account, account.primary, event)

    learner_client.post(reverse("calendars:import_now"))

    assert CalendarEvent.objects.get(external_id=event.id).title == "Après"


def test_import_now_reports_a_provider_failure(sandbox_settings, learner, learner_client):
    connect(sandbox_settings, learner, "outlook")
    sandbox_settings.add_fault("unavailable", endpoint="graph.delta", times=0)
    response = learner_client.post(reverse("calendars:import_now"), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "L'import de Outlook n'a pas abouti. Réessayez dans un instant."
    ]


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
    integration = connect(sandbox_settings, learner, "google")
    integration.status = "needs_reconnect"
    integration.save()
    response = learner_client.post(reverse("calendars:import_now"), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Aucun agenda à importer : connectez ou reconnectez-en un dans les paramètres."
    ]
