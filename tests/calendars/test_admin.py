"""Support's admin for calendar integrations and their sync history, against the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from accounts.models import Profile
from calendars import tasks
from calendars.models import CalendarIntegration, SyncRun
from tests.calendars.client_helpers import messages_of
from tests.calendars.connect_helpers import GOOGLE_ACCOUNT, OUTLOOK_ACCOUNT, connect

CHANGELIST = reverse("admin:calendars_calendarintegration_changelist")


def _change_url(integration: CalendarIntegration) -> str:
    return reverse("admin:calendars_calendarintegration_change", args=[integration.pk])


def _act(client, action: str, *integrations: CalendarIntegration, **extra):
    data = {"action": action, "_selected_action": [i.pk for i in integrations], **extra}
    return client.post(CHANGELIST, data, follow=True)


def _issued(sandbox) -> set[str]:
    tokens = sandbox.google.issued_tokens() | sandbox.microsoft.issued_tokens()
    assert tokens
    return tokens


@pytest.fixture
def integrations(sandbox_settings, learner, make_user):
    """Léa's Google and Outlook calendars, and someone else's Google calendar."""
    other = make_user("bruno", email="bruno@example.com")
    return (
        connect(sandbox_settings, learner, "google"),
        connect(sandbox_settings, learner, "outlook"),
        connect(sandbox_settings, other, "google", email="sam.nguyen@gmail.test"),
    )


def _listed(response) -> list[int]:
    return sorted(i.pk for i in response.context["cl"].result_list)


def test_admin_is_closed_to_learners(learner_client):
    response = learner_client.get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_search_by_learner_and_account(staff_client, integrations):
    google, outlook, others = integrations
    assert _listed(staff_client.get(CHANGELIST, {"q": "learner"})) == [google.pk, outlook.pk]
    assert _listed(staff_client.get(CHANGELIST, {"q": "bruno@example.com"})) == [others.pk]
    assert _listed(staff_client.get(CHANGELIST, {"q": OUTLOOK_ACCOUNT})) == [outlook.pk]


def test_staff_filter_by_provider_and_status(staff_client, integrations):
    _, outlook, others = integrations
    CalendarIntegration.objects.filter(pk=others.pk).update(status="needs_reconnect")
    assert _listed(staff_client.get(CHANGELIST, {"provider__exact": "outlook"})) == [outlook.pk]
    found = staff_client.get(CHANGELIST, {"status__exact": "needs_reconnect"})
    assert _listed(found) == [others.pk]


def test_pages_show_scopes_and_expiry_but_never_a_token(
    staff_client, integrations, sandbox_settings
):
    google, outlook, _ = integrations
    pages = [staff_client.get(CHANGELIST)]
    pages += [staff_client.get(_change_url(i)) for i in (google, outlook)]

    assert all(page.status_code == 200 for page in pages)
    assert "https://www.googleapis.com/auth/calendar.events" in pages[1].text
    assert "Calendars.ReadWrite" in pages[2].text
    assert "expiration du jeton" in pages[1].text.lower()
    for page in pages:
        assert not [token for token in _issued(sandbox_settings) if token in page.text]
        assert "credentials" not in page.text
        assert "identifiants chiffrés" not in page.text


def test_integrations_are_neither_added_nor_deleted_by_hand(staff_client, integrations):
    google = integrations[0]
    assert staff_client.get(reverse("admin:calendars_calendarintegration_add")).status_code == 403
    delete = reverse("admin:calendars_calendarintegration_delete", args=[google.pk])
    assert staff_client.get(delete).status_code == 403
    assert "delete_selected" not in staff_client.get(CHANGELIST).text


def test_staff_change_the_learners_choices(staff_client, integrations):
    google = integrations[0]
    response = staff_client.post(
        _change_url(google),
        # The read-only inlines (push channels, exported formations) still post their
        # management forms.
        {"import_enabled": "on", "sync_enabled": "on",
         "channels-TOTAL_FORMS": "0", "channels-INITIAL_FORMS": "0",
         "exports-TOTAL_FORMS": "0", "exports-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert response.status_code == 302
    google.refresh_from_db()
    assert (google.import_enabled, google.export_enabled, google.sync_enabled) == (
        True,
        False,
        True,
    )
    assert google.get_credentials()["refresh_token"]


def test_refresh_action_gets_new_tokens(staff_client, integrations, sandbox_settings):
    google, outlook, _ = integrations
    before = {i.pk: i.get_credentials() for i in (google, outlook)}

    response = _act(staff_client, "refresh_tokens", google, outlook)

    assert messages_of(response) == ["2 intégrations ont de nouveaux jetons."]
    for integration in (google, outlook):
        integration.refresh_from_db()
        assert integration.get_credentials() != before[integration.pk]
        assert integration.status == CalendarIntegration.Status.CONNECTED
    assert not [token for token in _issued(sandbox_settings) if token in response.text]


def test_refresh_action_marks_a_revoked_grant_needs_reconnect(
    staff_client, integrations, sandbox_settings
):
    google, outlook, _ = integrations
    sandbox_settings.google.revoke_account(sandbox_settings.store.account(GOOGLE_ACCOUNT))

    response = _act(staff_client, "refresh_tokens", google, outlook)

    messages = messages_of(response)
    assert messages[0] == "1 intégration a de nouveaux jetons."
    assert messages[1].startswith("Échec du rafraîchissement : Google Agenda — " + GOOGLE_ACCOUNT)
    google.refresh_from_db()
    assert google.status == CalendarIntegration.Status.NEEDS_RECONNECT
    assert google.last_error and google.last_error_at
    assert not [token for token in _issued(sandbox_settings) if token in response.text]


def test_mark_needs_reconnect_action(staff_client, integrations):
    google, outlook, _ = integrations

    response = _act(staff_client, "mark_needs_reconnect", google)

    assert messages_of(response) == ["1 intégration marquée « à reconnecter »."]
    google.refresh_from_db()
    outlook.refresh_from_db()
    assert google.status == CalendarIntegration.Status.NEEDS_RECONNECT
    assert "équipe d'assistance" in google.last_error
    assert outlook.status == CalendarIntegration.Status.CONNECTED


def test_disconnect_action_asks_first_then_revokes_at_google(
    staff_client, integrations, sandbox_settings
):
    google, outlook, _ = integrations
    refresh_token = google.get_credentials()["refresh_token"]

    confirmation = _act(staff_client, "disconnect", google)

    assert confirmation.status_code == 200
    assert "Oui, déconnecter" in confirmation.text
    assert CalendarIntegration.objects.filter(pk=google.pk).exists()

    done = _act(staff_client, "disconnect", google, post="yes")

    assert messages_of(done) == ["1 intégration déconnectée."]
    assert not CalendarIntegration.objects.filter(pk=google.pk).exists()
    assert CalendarIntegration.objects.filter(pk=outlook.pk).exists()
    assert sandbox_settings.google.refresh_tokens[refresh_token].revoked


def test_staff_sync_now_from_the_admin(
    sandbox_settings, learner, staff_client, django_capture_on_commit_callbacks
):
    google = connect(sandbox_settings, learner, "google")
    outlook = connect(sandbox_settings, learner, "outlook")
    CalendarIntegration.objects.filter(pk=outlook.pk).update(
        status=CalendarIntegration.Status.NEEDS_RECONNECT
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:calendars_calendarintegration_changelist"),
            {"action": "sync_now", "_selected_action": [google.pk, outlook.pk]},
            follow=True,
        )
    texts = [str(m) for m in response.context["messages"]]
    assert "Synchronisation demandée pour 1 intégration." in texts
    assert "1 intégration à reconnecter n'a pas été synchronisée." in texts
    assert list(SyncRun.objects.values_list("integration", "trigger")) == [(google.pk, "admin")]

    history = staff_client.get(reverse("admin:calendars_syncrun_changelist"))
    assert history.status_code == 200
    assert "réussie" in history.content.decode()
    change = staff_client.get(
        reverse("admin:calendars_calendarintegration_change", args=[google.pk])
    )
    assert "Équipe d&#x27;assistance" in change.content.decode()


def test_sync_history_is_read_only_for_staff(sandbox_settings, learner, staff_client):
    integration = connect(sandbox_settings, learner, "google")
    tasks.sync_integration(integration.pk, SyncRun.Trigger.MANUAL)
    run = integration.sync_runs.get()
    url = reverse("admin:calendars_syncrun_change", args=[run.pk])
    assert staff_client.get(url).status_code == 200  # viewable
    staff_client.post(url, {"created": "0", "error": "changed"})
    run.refresh_from_db()
    assert run.error == "" and run.created > 0
    delete = reverse("admin:calendars_syncrun_delete", args=[run.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403


def test_the_admin_shows_times_in_the_staff_members_zone_and_says_which(
    staff_client, staff, integrations
):
    Profile.objects.update_or_create(user=staff, defaults={"time_zone": "America/Montreal"})
    integration = integrations[0]
    started = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)  # 07:00 in Montreal
    SyncRun.objects.create(integration=integration, trigger="manual", direction="both",
                           started_at=started, finished_at=started)  # fmt: skip
    SyncRun.objects.filter(integration=integration).update(started_at=started)

    page = staff_client.get(_change_url(integration)).text

    assert "Heures affichées dans le fuseau America/Montreal" in page
    assert "10/01/2027 07:00" in page
    assert "10/01/2027 12:00" not in page
