"""Exporting from the formation page, the API and the settings page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from calendars.models import CalendarIntegration, FormationExport
from calendars.sync.exporting import integration_export
from tests.calendars.calendar_helpers import events_of, one_event
from tests.calendars.client_helpers import BASE, call, error_of
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("forget_exported_events")
PROVIDERS = ["google", "outlook"]


def _remote(sandbox, integration):
    account = sandbox.store.account(integration.account_email)
    return account.calendars[integration.calendars.get(is_export_target=True).external_id]


def _manual(sandbox, learner, provider):
    """Connected with automatic export off: only the button and the API export."""
    integration = connect(sandbox, learner, provider)
    CalendarIntegration.objects.filter(pk=integration.pk).update(export_enabled=False)
    return integration


# --- API ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_api_exports_a_formation_and_returns_the_providers_event_id(
    client, sandbox_settings, learner, make_formation, bearer, provider
):
    integration = _manual(sandbox_settings, learner, provider)
    formation = make_formation(learners=(learner,))
    path = f"{BASE}/{provider}/export-formation"

    first = call(client, "post", path, {"formationId": formation.pk}, **bearer)
    again = call(client, "post", path, {"formationId": str(formation.uid)}, **bearer)

    assert first.status_code == 200, first.content
    event = one_event(_remote(sandbox_settings, integration), formation, provider)
    assert first.json() == {
        "eventId": event.id,
        "calendarId": event.calendar_id,
        "status": "created",
    }
    assert again.json() == {**first.json(), "status": "unchanged"}


def test_api_export_of_a_formation_that_is_not_the_learners_is_a_404(
    client, sandbox_settings, learner, make_formation, bearer
):
    connect(sandbox_settings, learner, "google")
    other = make_formation()  # not enrolled
    path = f"{BASE}/google/export-formation"
    for reference in (other.pk, str(other.uid), "nope", 10**9):
        response = call(client, "post", path, {"formationId": reference}, **bearer)
        assert error_of(response, 404)["code"] == "formation_not_found"
    assert events_of(_remote(sandbox_settings, CalendarIntegration.objects.get()), other,
                      "google") == []  # fmt: skip


def test_api_export_needs_a_connected_calendar_and_a_scheduled_formation(
    client, sandbox_settings, learner, make_formation, bearer
):
    formation = make_formation(learners=(learner,))
    path = f"{BASE}/google/export-formation"
    assert error_of(call(client, "post", path, {"formationId": formation.pk}, **bearer), 404)
    connect(sandbox_settings, learner, "google")
    formation.status = formation.Status.CANCELLED
    formation.save()
    response = call(client, "post", path, {"formationId": formation.pk}, **bearer)
    assert error_of(response, 409)["code"] == "formation_cancelled"
    bad = call(client, "post", path, {"formation": formation.pk}, **bearer)
    assert error_of(bad, 400)["code"] == "invalid_input"


def test_api_export_reports_a_lost_grant_as_409(
    client, sandbox_settings, learner, make_formation, bearer
):
    integration = connect(sandbox_settings, learner, "google")
    formation = make_formation(learners=(learner,))
    integration.status = CalendarIntegration.Status.NEEDS_RECONNECT
    integration.save()
    response = call(client, "post", f"{BASE}/google/export-formation",
                    {"formationId": formation.pk}, **bearer)  # fmt: skip
    assert error_of(response, 409)["code"] == "needs_reconnect"


def test_api_disconnect_can_remove_the_exported_formations(
    client, sandbox_settings, learner, make_formation, bearer
):
    integration = connect(sandbox_settings, learner, "outlook")
    formation = make_formation(learners=(learner,))
    integration_export(integration=integration)
    remote = _remote(sandbox_settings, integration)
    response = call(client, "delete", f"{BASE}/integrations/outlook?removeExported=true", **bearer)
    assert response.status_code == 204
    assert events_of(remote, formation, "outlook") == []


# --- formation page -----------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_formation_page_button_adds_it_to_the_calendar(
    learner_client, sandbox_settings, learner, make_formation, provider
):
    integration = _manual(sandbox_settings, learner, provider)
    formation = make_formation(learners=(learner,))
    page = learner_client.get(formation.get_absolute_url()).content.decode()
    label = provider.capitalize()
    assert f"Ajouter à mon agenda {label}" in page

    response = learner_client.post(
        reverse("calendars:export_formation", args=[provider, formation.pk]), follow=True
    )

    one_event(_remote(sandbox_settings, integration), formation, provider)
    page = response.content.decode()
    assert f"La formation est dans votre agenda {label}." in page
    assert f"Dans votre agenda {label}, ajoutée à votre demande et tenue à jour" in page


def test_the_formation_page_offers_to_add_again_what_the_learner_removed(
    learner_client, sandbox_settings, learner, make_formation
):
    integration = connect(sandbox_settings, learner, "google")
    formation = make_formation(learners=(learner,))
    integration_export(integration=integration)
    FormationExport.objects.update(state=FormationExport.State.REMOVED)
    page = learner_client.get(formation.get_absolute_url()).content.decode()
    assert "Vous avez retiré cette formation de votre agenda Google." in page
    assert "ajouter à nouveau à mon agenda Google" in page


def test_the_export_button_refuses_other_learners_formations_and_get(
    learner_client, sandbox_settings, learner, make_formation
):
    connect(sandbox_settings, learner, "google")
    other = make_formation()
    url = reverse("calendars:export_formation", args=["google", other.pk])
    assert learner_client.post(url).status_code == 404
    mine = make_formation(learners=(learner,))
    assert learner_client.get(reverse("calendars:export_formation",
                                      args=["google", mine.pk])).status_code == 405  # fmt: skip
    url = reverse("calendars:export_formation", args=["nope", mine.pk])
    assert learner_client.post(url).status_code == 404


def test_the_formation_page_says_what_the_add_my_formations_setting_means(
    learner_client, sandbox_settings, learner, make_formation
):
    integration = connect(sandbox_settings, learner, "google")
    formation = make_formation(learners=(learner,))
    page = learner_client.get(formation.get_absolute_url()).text
    # On, before the sync has written it: it will be, and the button does it now.
    assert "Toutes vos formations sont ajoutées à votre agenda Google" in page
    assert "Ajouter à mon agenda Google" in page
    integration_export(integration=integration)
    page = learner_client.get(formation.get_absolute_url()).text
    assert "Dans votre agenda Google, avec toutes vos formations, tenue à jour" in page
    assert "Ajouter à mon agenda Google" not in page

    CalendarIntegration.objects.update(export_enabled=False)
    other = make_formation(learners=(learner,))
    page = learner_client.get(other.get_absolute_url()).text
    assert "Vos formations ne sont pas ajoutées automatiquement à votre agenda Google" in page
    assert "Ajouter à mon agenda Google" in page


def test_without_a_calendar_the_formation_page_invites_to_connect_one(
    learner_client, sandbox_settings, learner, make_formation
):
    formation = make_formation(learners=(learner,))
    page = learner_client.get(formation.get_absolute_url()).content.decode()
    assert reverse("settings_calendars") in page
    assert "Ajouter à mon agenda" not in page


# --- settings page ------------------------------------------------------------------------


def test_connecting_syncs_both_ways_right_away(
    learner_client, sandbox_settings, learner, make_formation, django_capture_on_commit_callbacks
):
    from tests.calendars.connect_helpers import GOOGLE_ACCOUNT, consent_redirect

    formation = make_formation(learners=(learner,))
    start = learner_client.post(reverse("calendars:connect", args=["google"]))
    back = consent_redirect(sandbox_settings, "google", start["Location"], GOOGLE_ACCOUNT)
    with django_capture_on_commit_callbacks(execute=True):
        learner_client.get(back.replace("http://testserver", ""))
    integration = CalendarIntegration.objects.get(user=learner)
    one_event(_remote(sandbox_settings, integration), formation, "google")
    run = integration.sync_runs.get()
    assert (run.trigger, run.direction, run.error) == ("connect", "both", "")
    assert run.created == 1 + integration.calendars.get(is_primary=True).events.count()


def test_disconnect_offers_to_take_the_exported_formations_back(
    learner_client, sandbox_settings, learner, make_formation
):
    integration = connect(sandbox_settings, learner, "google")
    kept = make_formation(learners=(learner,))
    integration_export(integration=integration)
    remote = _remote(sandbox_settings, integration)
    url = reverse("settings_calendar_disconnect", args=["google"])
    assert url in learner_client.get(reverse("settings_calendars")).content.decode()
    confirm = learner_client.get(url).content.decode()  # a page that says what will happen
    assert "La formation ajoutée à votre agenda Google Agenda" in confirm
    assert "les retirer de mon agenda" in confirm and "les y laisser" in confirm
    assert CalendarIntegration.objects.exists()  # nothing done by looking

    done = learner_client.post(url, {"remove_exported": "off"}, follow=True)

    assert not CalendarIntegration.objects.exists()
    one_event(remote, kept, "google")
    assert "1 formation reste dans votre agenda, sans plus être tenue à jour" in done.text
    assert "l&#x27;accès est retiré chez Google Agenda" in done.text

    integration = connect(sandbox_settings, learner, "google")
    integration_export(integration=integration)
    done = learner_client.post(url, {"remove_exported": "on"}, follow=True)
    assert events_of(remote, kept, "google") == []
    assert "1 formation est retirée de votre agenda" in done.text


def test_the_card_says_what_add_my_formations_does_and_names_the_settings_plainly(
    learner_client, sandbox_settings, learner, make_formation
):
    integration = connect(sandbox_settings, learner, "outlook")
    make_formation(learners=(learner,))
    make_formation(learners=(learner,))
    integration_export(integration=integration)
    target = integration.calendars.get(is_export_target=True).name
    page = learner_client.get(reverse("settings_calendars")).text
    for label in ("Importer mes événements", "Ajouter mes formations",
                  "Synchronisation automatique"):  # fmt: skip
        assert f">{label}</label>" in page
    assert f"Toutes vos formations sont ajoutées à « {target} » et tenues à jour." in page
    assert "2 formations y sont aujourd'hui." in page

    CalendarIntegration.objects.update(export_enabled=False)
    page = learner_client.get(reverse("settings_calendars")).text
    assert f"ne sont pas ajoutées automatiquement : ajoutez-en une à « {target} »" in page

    integration.calendars.update(is_export_target=False)
    page = learner_client.get(reverse("settings_calendars")).text
    assert "Aucun de vos calendriers ne reçoit les formations" in page


def _settings(integration, **choices):
    """The card's form as the learner sends it: `choices`, and the calendars as they are."""
    provider = integration.provider
    data = {f"{provider}-{name}": "on" for name, on in choices.items() if on}
    calendars = integration.calendars.all()
    data[f"{provider}-import_calendars"] = [c.pk for c in calendars if c.import_enabled]
    data[f"{provider}-export_calendar"] = [c.pk for c in calendars if c.is_export_target]
    return reverse("settings_calendar_update", args=[provider]), data


@pytest.mark.parametrize("provider", PROVIDERS)
def test_turning_add_my_formations_off_offers_to_take_them_out(
    learner_client, sandbox_settings, learner, make_formation, provider
):
    integration = connect(sandbox_settings, learner, provider)
    first = make_formation(learners=(learner,))
    second = make_formation(learners=(learner,))
    integration_export(integration=integration)
    remote = _remote(sandbox_settings, integration)
    url, data = _settings(integration, import_enabled=True, sync_enabled=True)
    withdraw = reverse("settings_calendar_withdraw", args=[provider])

    response = learner_client.post(url, data)

    assert response["Location"] == withdraw
    integration.refresh_from_db()
    assert not integration.export_enabled
    assert integration.calendars.filter(is_export_target=True).exists()
    page = learner_client.get(withdraw).text
    assert "Retirer les 2 formations déjà dans votre agenda" in page
    assert "Les laisser dans mon agenda" in page
    one_event(remote, first, provider)  # nothing done by looking

    done = learner_client.post(withdraw, follow=True)

    assert events_of(remote, first, provider) == events_of(remote, second, provider) == []
    assert "2 formations sont retirées de votre agenda" in done.text
    assert not FormationExport.objects.exists()
    # Nothing left to take out: the page sends back to the settings.
    assert learner_client.get(withdraw)["Location"] == reverse("settings_calendars")


def test_formations_left_in_the_calendar_stay_up_to_date_and_no_new_one_is_added(
    learner_client, sandbox_settings, learner, make_formation
):
    integration = connect(sandbox_settings, learner, "google")
    kept = make_formation(learners=(learner,))
    integration_export(integration=integration)
    remote = _remote(sandbox_settings, integration)
    url, data = _settings(integration, import_enabled=True, sync_enabled=True)
    learner_client.post(url, data)  # off; the learner then follows "Les laisser"

    kept.title = "Nouveau titre"
    kept.save()
    new = make_formation(learners=(learner,))
    integration_export(integration=integration)

    assert one_event(remote, kept, "google").title == "Nouveau titre"
    assert events_of(remote, new, "google") == []


def test_turning_it_off_with_nothing_in_the_calendar_asks_nothing(
    learner_client, sandbox_settings, learner
):
    integration = connect(sandbox_settings, learner, "google")
    url, data = _settings(integration, import_enabled=True)
    assert learner_client.post(url, data)["Location"] == reverse("settings_calendars")


def test_the_withdraw_page_is_the_learners_own(
    client, make_user, sandbox_settings, learner, make_formation
):
    integration = connect(sandbox_settings, learner, "google")
    make_formation(learners=(learner,))
    integration_export(integration=integration)
    other = make_user("other")
    client.force_login(other)
    url = reverse("settings_calendar_withdraw", args=["google"])
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert FormationExport.objects.filter(create_sent=True).count() == 1


def test_api_turning_export_off_can_take_the_formations_out(
    client, sandbox_settings, learner, make_formation, bearer
):
    integration = connect(sandbox_settings, learner, "outlook")
    formation = make_formation(learners=(learner,))
    integration_export(integration=integration)
    remote = _remote(sandbox_settings, integration)
    path = f"{BASE}/integrations/outlook/settings"

    off = call(client, "put", path, {"export": False}, **bearer)
    assert off.status_code == 200, off.content
    assert (off.json()["export"], off.json()["formationsInCalendar"]) == (False, 1)
    one_event(remote, formation, "outlook")

    out = call(client, "put", f"{path}?removeExported=true", {"export": False}, **bearer)
    assert out.json()["formationsInCalendar"] == 0
    assert events_of(remote, formation, "outlook") == []
