"""The learner's calendars, listed from the provider, and their choices on the settings page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from calendars.errors import ProviderError
from calendars.models import Calendar
from calendars.services.connection import integration_refresh_calendars
from sandbox.store import Calendar as SandboxCalendar
from tests.calendars.connect_helpers import connect


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_connecting_lists_the_calendars_with_the_primary_one_chosen(
    sandbox_settings, learner, provider
):
    integration = connect(sandbox_settings, learner, provider)

    calendars = list(integration.calendars.all())
    account = sandbox_settings.store.account(integration.account_email)
    assert {c.external_id for c in calendars} == set(account.calendars)
    primary = next(c for c in calendars if c.is_primary)
    assert primary.external_id == account.primary.id
    assert [c.name for c in calendars if c.import_enabled] == [primary.name]
    assert [c.name for c in calendars if c.is_export_target] == [primary.name]
    read_only = [c for c in calendars if not c.can_edit]
    assert [c.name for c in read_only] == ["Jours fériés en France"]


def test_learner_picks_calendars_to_import_and_the_one_receiving_formations(
    sandbox_settings, learner, learner_client
):
    integration = connect(sandbox_settings, learner, "google")
    primary = integration.calendars.get(is_primary=True)
    team = integration.calendars.get(name="Équipe projet")
    holidays = integration.calendars.get(can_edit=False)
    page = learner_client.get(reverse("settings_calendars"))
    assert "Équipe projet" in page.text
    labelled = f'aria-labelledby="cal-{holidays.pk} export-{holidays.pk}" disabled'
    assert f'value="{holidays.pk}" {labelled}' in page.text

    response = learner_client.post(
        reverse("settings_calendar_update", args=["google"]),
        {
            "google-import_enabled": "on",
            "google-import_calendars": [str(team.pk), str(holidays.pk)],
            "google-export_calendar": str(team.pk),
        },
        follow=True,
    )

    assert "Vos réglages de synchronisation sont enregistrés." in response.text
    assert set(Calendar.objects.filter(import_enabled=True).values_list("pk", flat=True)) == {
        team.pk,
        holidays.pk,
    }
    assert list(Calendar.objects.filter(is_export_target=True)) == [team]
    primary.refresh_from_db()
    assert not primary.import_enabled


def test_read_only_calendar_cannot_receive_formations(sandbox_settings, learner, learner_client):
    integration = connect(sandbox_settings, learner, "outlook")
    holidays = integration.calendars.get(can_edit=False)
    response = learner_client.post(
        reverse("settings_calendar_update", args=["outlook"]),
        {"outlook-export_calendar": str(holidays.pk)},
        follow=True,
    )
    assert "lecture seule" in response.text
    assert integration.calendars.get(is_export_target=True).is_primary


def test_calendars_of_another_learner_are_ignored(
    sandbox_settings, learner, learner_client, make_user
):
    mine = connect(sandbox_settings, learner, "google")
    theirs = connect(sandbox_settings, make_user(), "google", email="alex.martin@gmail.test")
    their_team = theirs.calendars.get(name="Équipe projet")
    learner_client.post(
        reverse("settings_calendar_update", args=["google"]),
        {"google-import_calendars": [str(their_team.pk)]},
    )
    their_team.refresh_from_db()
    assert their_team.import_enabled is False
    assert not mine.calendars.filter(import_enabled=True).exists()


def test_refresh_follows_the_provider_and_keeps_the_choices(
    sandbox_settings, learner, learner_client
):
    integration = connect(sandbox_settings, learner, "google")
    account = sandbox_settings.store.account(integration.account_email)
    team_id = next(c.id for c in account.calendars.values() if c.name == "Équipe projet")
    integration.calendars.filter(external_id=team_id).update(import_enabled=True)
    added = SandboxCalendar("nouveau0calendrier@group.calendar.google.test", "Nouveau", False,
                            True, "Europe/Paris", "#123456")  # fmt: skip
    account.calendars[added.id] = added
    holidays = next(c for c in account.calendars.values() if not c.can_edit)
    del account.calendars[holidays.id]
    try:
        response = learner_client.post(
            reverse("settings_calendar_refresh", args=["google"]), follow=True
        )
    finally:
        del account.calendars[added.id]
        account.calendars[holidays.id] = holidays

    assert "La liste de vos calendriers est à jour." in response.text
    names = set(integration.calendars.values_list("name", flat=True))
    assert "Nouveau" in names and "Jours fériés en France" not in names
    assert integration.calendars.get(name="Nouveau").import_enabled is False
    assert integration.calendars.get(external_id=team_id).import_enabled is True


@pytest.mark.parametrize(
    ("provider", "endpoint"),
    [("google", "google.calendarList.list"), ("outlook", "graph.calendars.list")],
)
@pytest.mark.parametrize("kind", ["rate_limit", "server_error", "unavailable", "malformed"])
def test_listing_failures_are_temporary_provider_errors(
    sandbox_settings, learner, provider, endpoint, kind
):
    integration = connect(sandbox_settings, learner, provider)
    sandbox_settings.add_fault(kind, endpoint=endpoint, retry_after=7)
    with pytest.raises(ProviderError) as excinfo:
        integration_refresh_calendars(integration=integration)
    assert excinfo.value.permanent is False
    if kind == "rate_limit":
        assert excinfo.value.retry_after == 7


@pytest.mark.parametrize(
    ("provider", "endpoint"),
    [("google", "google.calendarList.list"), ("outlook", "graph.calendars.list")],
)
def test_listing_refused_token_is_refreshed_once(sandbox_settings, learner, provider, endpoint):
    integration = connect(sandbox_settings, learner, provider)
    sandbox_settings.add_fault("unauthorized", endpoint=endpoint)
    sandbox_settings.reset_counters()
    assert len(integration_refresh_calendars(integration=integration)) == 3
    assert sandbox_settings.count(endpoint) == 2


def test_listing_failure_during_connect_still_connects(sandbox_settings, learner):
    sandbox_settings.add_fault("server_error", endpoint="google.calendarList.list")
    integration = connect(sandbox_settings, learner, "google")
    assert integration.pk and not integration.calendars.exists()


def test_a_colour_that_is_not_hex_is_dropped(sandbox_settings, learner):
    integration = connect(sandbox_settings, learner, "google")
    account = sandbox_settings.store.account(integration.account_email)
    original = account.primary.color
    account.primary.color = "red;background:url(//evil.example/x)"
    try:
        integration_refresh_calendars(integration=integration)
    finally:
        account.primary.color = original
    assert integration.calendars.get(is_primary=True).color == ""
