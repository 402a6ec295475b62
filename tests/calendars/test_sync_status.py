"""Where each connected calendar's syncs stand, said where the learner looks: on its card in
the settings, with "Synchroniser maintenant", and on the calendar page, which updates itself
when a run ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from calendars import tasks, views
from calendars.models import CalendarEvent, CalendarIntegration, SyncRun
from calendars.templatetags.calendar_sync import run_summary
from tests.calendars.client_helpers import said, sync_line, text_of, words_of
from tests.calendars.connect_helpers import connect

SETTINGS = reverse("settings_calendars")
CALENDAR = reverse("calendars:calendar")
SYNC_NOW = reverse("calendars:import_now")
VERSION = reverse("calendars:version")


def _line(client, url: str, provider: str) -> str:
    return text_of_line(client.get(url), provider)


def text_of_line(page, provider: str) -> str:
    """What `provider`'s status reads (its markup stripped)."""
    return words_of(sync_line(page, provider))


@pytest.fixture
def two_calendars(learner, make_calendar):
    """Léa's Google and Outlook calendars, written here (no provider needed)."""
    google = make_calendar(learner).integration
    outlook = make_calendar(learner, provider="outlook").integration
    return google, outlook


def test_each_card_and_the_calendar_page_say_when_it_last_synced(learner_client, two_calendars):
    google, _outlook = two_calendars
    synced = timezone.now() - timedelta(minutes=2, seconds=5)
    CalendarIntegration.objects.filter(pk=google.pk).update(last_synced_at=synced)

    for url in (SETTINGS, CALENDAR):
        page = learner_client.get(url)
        assert "Synchronisé il y a 2 minutes" in text_of_line(page, "google"), url
        assert f'<time datetime="{synced.isoformat()}"' in sync_line(page, "google")
        assert "Synchronisé" not in text_of_line(page, "outlook")  # never synced
    assert "Pas encore de synchronisation." in _line(learner_client, CALENDAR, "outlook")


def test_a_sync_under_way_is_said_and_its_button_waits(learner_client, two_calendars):
    google, _outlook = two_calendars
    SyncRun.objects.create(integration=google, trigger="manual", direction="both")

    card = sync_line(learner_client.get(SETTINGS), "google")
    calendar = learner_client.get(CALENDAR)

    assert "Synchronisation en cours…" in card
    assert ">Synchroniser maintenant</button>" in card and " disabled>" in card
    assert "Synchronisation en cours…" in sync_line(calendar, "google")
    assert "Synchronisation en cours…" not in sync_line(calendar, "outlook")


def test_the_calendar_page_shows_the_end_of_a_run_when_it_ends(learner_client, two_calendars):
    """The page's script reloads the live region when the version moves: a run that ends moves
    it, and the region then says so."""
    google, _outlook = two_calendars
    run = SyncRun.objects.create(integration=google, trigger="push", direction="both")
    before = learner_client.get(VERSION).json()["version"]
    assert "Synchronisation en cours…" in _line(learner_client, CALENDAR, "google")

    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(finished_at=now)
    CalendarIntegration.objects.filter(pk=google.pk).update(last_synced_at=now)

    assert learner_client.get(VERSION).json()["version"] != before
    line = _line(learner_client, CALENDAR, "google")
    assert "Synchronisation en cours" not in line
    assert "Synchronisé à l'instant" in line


def test_the_calendar_page_button_says_synchroniser_and_a_failed_calendar_offers_a_retry(
    learner_client, two_calendars
):
    _google, outlook = two_calendars
    SyncRun.objects.create(integration=outlook, trigger="periodic", direction="both",
                           finished_at=timezone.now(), error="Microsoft Graph answered 503.",
                           error_code="provider_error")  # fmt: skip

    page = learner_client.get(CALENDAR)

    assert ">Synchroniser maintenant</button>" in page.text
    assert "Importer maintenant" not in page.text
    outlook_line = sync_line(page, "outlook")
    assert said("provider_error") in text_of_line(page, "outlook")
    assert (
        'name="provider" value="outlook"' in outlook_line and ">Réessayer</button>" in outlook_line
    )
    assert "Réessayer" not in sync_line(page, "google")
    assert "answered 503" not in page.text


def test_a_lost_grant_is_said_once_on_the_calendar_page_with_its_button(
    learner_client, two_calendars
):
    google, _outlook = two_calendars
    CalendarIntegration.objects.filter(pk=google.pk).update(
        status="needs_reconnect", last_error_code="needs_reconnect", last_error="revoked"
    )
    connect_form = f'action="{reverse("calendars:connect", args=["google"])}"'

    page = learner_client.get(CALENDAR)

    text = text_of(page)
    assert text.count("a été retiré ou a expiré") == 1  # its status, not a banner as well
    assert connect_form in sync_line(page, "google")
    assert text.count(connect_form) == 1
    # Elsewhere, the banner still says it.
    assert "a été retiré ou a expiré" in text_of(learner_client.get(reverse("formations:list")))


def test_unreadable_credentials_are_said_as_such_in_the_banner(learner_client, two_calendars):
    google, _outlook = two_calendars
    CalendarIntegration.objects.filter(pk=google.pk).update(
        status="needs_reconnect", last_error_code="undecryptable", last_error="unreadable"
    )

    text = text_of(learner_client.get(reverse("formations:list")))

    assert said("undecryptable") in text
    assert "a été retiré ou a expiré" not in text


# --- "Synchroniser maintenant" on a card ---------------------------------------------------------


@pytest.fixture
def dispatched(monkeypatch):
    """The syncs the button sends (recorded, not run)."""
    sent: list[int] = []

    def dispatch(integration_id, trigger):
        sent.append(integration_id)
        return True

    monkeypatch.setattr(views, "dispatch_in_background", dispatch)
    return sent


def test_a_cards_button_syncs_that_calendar_and_comes_back_to_the_card(
    learner_client, two_calendars, dispatched
):
    google, outlook = two_calendars
    CalendarIntegration.objects.filter(pk=outlook.pk).update(import_enabled=False)
    card = sync_line(learner_client.get(SETTINGS), "outlook")
    assert f'action="{SYNC_NOW}"' in card and 'name="back" value="settings"' in card

    response = learner_client.post(SYNC_NOW, {"provider": "outlook", "back": "settings"})

    assert response.status_code == 302
    assert response["Location"] == f"{SETTINGS}#integration-outlook"
    assert dispatched == [outlook.pk]  # that calendar only, its import off or not

    learner_client.post(SYNC_NOW)
    assert sorted(dispatched[1:]) == sorted([google.pk, outlook.pk])  # the page's: every one


def test_a_cards_button_reaches_only_the_learners_own_calendars(
    learner_client, make_user, make_calendar, dispatched
):
    other = make_calendar(make_user()).integration

    response = learner_client.post(SYNC_NOW, {"provider": "google"}, follow=True)

    assert dispatched == []
    assert other.pk not in dispatched
    assert [str(m) for m in response.context["messages"]] == [
        "Aucun agenda à synchroniser : connectez ou reconnectez-en un dans les paramètres."
    ]


def test_no_sync_button_while_only_the_learner_or_the_team_can_act(
    sandbox_settings, learner, learner_client
):
    integration = connect(sandbox_settings, learner, "google")
    CalendarIntegration.objects.filter(pk=integration.pk).update(
        status="needs_reconnect", last_error_code="needs_reconnect"
    )

    card = sync_line(learner_client.get(SETTINGS), "google")

    assert f'action="{SYNC_NOW}"' not in card
    assert ">Reconnecter</button>" in card


def test_the_last_run_says_what_its_counts_count(
    learner_client, sandbox_settings, learner, make_formation
):
    integration = connect(sandbox_settings, learner, "google")
    make_formation(learners=(learner,))
    tasks.sync_integration(integration.pk, SyncRun.Trigger.MANUAL)
    imported = CalendarEvent.objects.filter(calendar__integration=integration).count()
    assert imported > 1

    page = words_of(learner_client.get(reverse("settings_calendars")).text)

    assert f"{imported} événements importés, 1 formation ajoutée à votre agenda." in page
    tasks.sync_integration(integration.pk, SyncRun.Trigger.MANUAL)
    assert "Rien n'a changé." in words_of(learner_client.get(reverse("settings_calendars")).text)


@pytest.mark.parametrize(
    ("counts", "said"),
    [
        ({"created": 1}, "1 événement importé."),
        ({"created": 3, "formations_created": 1, "updated": 2, "formations_updated": 2},
         "2 événements importés, 1 formation ajoutée à votre agenda, 2 formations mises à jour."),
        ({"deleted": 1, "formations_deleted": 1}, "1 formation retirée de votre agenda."),
        ({}, "Rien n'a changé."),
    ],
)  # fmt: skip
def test_a_runs_summary_names_events_and_formations_apart(counts, said):
    assert run_summary(SyncRun(**counts)) == said
