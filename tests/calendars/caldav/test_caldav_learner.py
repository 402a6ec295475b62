"""A learner connects a CalDAV account from the settings page (Radicale, then Xandikos), sees its
events on the calendar page, and finds their formations in it, read back through the caldav
library and from the server itself; a wrong password is refused with nothing stored, and one
withdrawn later asks for a new one."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import unquote

import caldav
import icalendar
import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import SecurityEvent
from calendars.models import CalendarEvent, CalendarIntegration, SyncRun
from calendars.providers import get_provider
from calendars.providers.caldav.connection import forget_sessions
from calendars.sync.exporting import integration_export
from calendars.tasks import run_now
from tests.calendars.client_helpers import messages_of
from tests.calendars.providers.caldav.servers import Fault
from tests.calendars.providers.caldav.test_caldav import all_day, single, weekly

CONNECT = reverse("calendars:connect_password", args=["caldav"])


def _connect(client, dav, password=None, server="other"):
    return client.post(
        CONNECT,
        {"server": server, "url": dav.url, "username": dav.username,
         "password": password or dav.password},
    )  # fmt: skip


def _calendar(integration, url):
    """The integration's calendar at `url` (servers spell addresses their own way: Radicale
    writes the account's @ as %40)."""
    (calendar,) = [c for c in integration.calendars.all() if unquote(c.external_id) == unquote(url)]
    return calendar


def _sync(integration) -> SyncRun:
    run = run_now(integration.pk, SyncRun.Trigger.MANUAL)
    assert run is not None
    return run


def test_the_settings_page_offers_the_form_with_presets_and_says_it_polls(learner_client, settings):
    settings.CALDAV_DEMO_URL = "http://127.0.0.1:5232/"
    page = learner_client.get(reverse("settings_calendars")).text
    assert f'action="{CONNECT}"' in page
    for label in ("iCloud", "Fastmail", "Serveur de démonstration (local)", "Autre serveur"):
        assert label in page
    assert 'type="password"' in page and "Mots de passe pour app" in page
    assert "relus toutes les 15 minutes" in page


def test_a_learner_connects_sees_events_and_finds_formations_in_the_calendar(
    learner_client, learner, dav, own_calendar, make_formation
):
    soon = timezone.now().replace(microsecond=0) + timedelta(days=2)
    dav.put(own_calendar, "reunion.ics", single("Réunion <équipe>", soon))
    dav.put(own_calendar, "serie.ics", weekly())
    dav.put(own_calendar, "conge.ics", all_day("Congé", soon.date() + timedelta(days=1)))
    formation = make_formation(learners=(learner,), title="Excel avancé", start=soon)

    response = _connect(learner_client, dav)

    assert response.status_code == 302, messages_of(response)
    integration = CalendarIntegration.objects.get(user=learner, provider="caldav")
    assert integration.status == CalendarIntegration.Status.CONNECTED
    assert integration.account_email == dav.username
    calendar = _calendar(integration, own_calendar)
    assert calendar.is_primary and calendar.import_enabled and calendar.is_export_target
    assert not _calendar(integration, dav.read_only_calendar).can_edit
    run = _sync(integration)
    assert not run.error, run.error

    titles = set(CalendarEvent.objects.filter(calendar=calendar).values_list("title", flat=True))
    assert {"Réunion <équipe>", "Cours du lundi", "Déplacé", "Congé"} <= titles
    assert CalendarEvent.objects.get(calendar=calendar, title="Congé").all_day
    week = learner_client.get(
        reverse("calendars:calendar"), {"view": "week", "date": f"{soon:%Y-%m-%d}"}
    ).text
    assert "Réunion &lt;équipe&gt;" in week and "Excel avancé" in week

    # The formation, read back through the caldav library...
    client = caldav.DAVClient(url=dav.url, username=dav.username, password=dav.password)
    found = [
        component
        for resource in client.calendar(url=own_calendar).events()
        for component in icalendar.Calendar.from_ical(resource.data).walk("VEVENT")
        if str(component.get("SUMMARY")) == "Excel avancé"
    ]
    assert len(found) == 1
    assert found[0].decoded("DTSTART") == soon
    # ...and from the server's own answer for the resource the export names.
    export = integration.exports.get(formation_uid=formation.uid)
    stored = dav.get(own_calendar, export.external_id)
    assert stored.status_code == 200
    assert "SUMMARY:Excel avancé" in stored.text
    assert f"X-FORMATION-ID:{formation.uid}" in stored.text
    # ...and, at Radicale, in the file it keeps for it (Xandikos keeps a git repository).
    on_disk = dav.stored_file(own_calendar, export.external_id)
    if on_disk is not None:
        assert f"X-FORMATION-ID:{formation.uid}" in on_disk.read_text(encoding="utf-8")
    # A second sync writes nothing again and duplicates nothing.
    _sync(integration)
    again = [r for r in client.calendar(url=own_calendar).events() if "Excel avancé" in r.data]
    assert len(again) == 1


def test_a_wrong_password_is_refused_and_nothing_is_stored(learner_client, learner, dav):
    response = _connect(learner_client, dav, password="not-the-app-password")

    assert response.status_code == 400
    text = response.content.decode().replace("&#x27;", "'")
    assert "Le serveur a refusé cet identifiant ou ce mot de passe" in text
    assert "not-the-app-password" not in text  # the password is never shown back
    assert dav.username in text  # the rest of the form is kept
    assert not CalendarIntegration.objects.exists()
    refused = SecurityEvent.objects.get(kind=SecurityEvent.Kind.OAUTH_REFUSED)
    assert (refused.user, refused.detail, refused.account) == (learner, "wrong_password",
                                                               dav.username)  # fmt: skip


def test_an_address_that_is_no_caldav_server_is_said_so(learner_client, live_server, dav):
    response = learner_client.post(
        CONNECT,
        {"server": "other", "url": f"{live_server.url}/healthz", "username": dav.username,
         "password": dav.password},
    )  # fmt: skip
    assert response.status_code == 400
    assert "ne répond pas comme un serveur d&#x27;agenda CalDAV" in response.content.decode()
    assert not CalendarIntegration.objects.exists()


def test_other_server_needs_its_address(learner_client, dav):
    response = learner_client.post(
        CONNECT, {"server": "other", "url": "", "username": "x", "password": "y"}
    )
    assert response.status_code == 400
    assert "Indiquez l&#x27;adresse CalDAV de votre service." in response.content.decode()


def test_a_password_withdrawn_later_asks_for_a_new_one_and_keeps_everything(
    learner_client, learner, dav, own_calendar
):
    dav.put(own_calendar, "reunion.ics", single("Réunion", timezone.now() + timedelta(days=1)))
    assert _connect(learner_client, dav).status_code == 302
    integration = CalendarIntegration.objects.get(user=learner, provider="caldav")
    _sync(integration)
    kept = CalendarEvent.objects.filter(calendar__integration=integration).count()
    assert kept

    dav.proxy.faults.extend(Fault(status=401) for _ in range(10))  # the password revoked
    run = _sync(integration)

    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.NEEDS_RECONNECT
    assert run.error_code == "needs_reconnect"
    assert CalendarEvent.objects.filter(calendar__integration=integration).count() == kept
    page = learner_client.get(reverse("settings_calendars")).text
    assert "Reconnecter avec ce mot de passe" in page and f'value="{dav.username}"' in page
    lost = SecurityEvent.objects.get(kind=SecurityEvent.Kind.GRANT_LOST)
    assert lost.user == learner

    dav.proxy.faults.clear()
    assert _connect(learner_client, dav).status_code == 302
    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.CONNECTED
    assert not _sync(integration).error


@pytest.mark.parametrize("fault", [Fault(status=503, retry_after="2"), Fault(drop=True)],
                         ids=["503", "dropped"])  # fmt: skip
def test_a_server_failing_mid_listing_loses_nothing_and_duplicates_nothing(
    learner_client, learner, dav, own_calendar, fault, no_waiting, settings
):
    settings.CALENDAR_RETRY_ATTEMPTS = 1
    start = timezone.now() + timedelta(days=1)
    for number in range(5):
        dav.put(own_calendar, f"e{number}.ics", single(f"Événement {number}", start))
    assert _connect(learner_client, dav).status_code == 302
    integration = CalendarIntegration.objects.get(user=learner, provider="caldav")
    calendar = _calendar(integration, own_calendar)

    dav.proxy.faults.append(fault)
    first = _sync(integration)
    second = _sync(integration)

    assert first.error  # the listing's first request failed: nothing half-done is kept
    assert not second.error, second.error
    titles = list(CalendarEvent.objects.filter(calendar=calendar).values_list("title", flat=True))
    assert sorted(titles) == [f"Événement {number}" for number in range(5)]


def test_the_token_the_connection_stored_is_read_back_without_a_request(
    learner_client, learner, dav, own_calendar
):
    assert _connect(learner_client, dav).status_code == 302
    credentials = CalendarIntegration.objects.get(user=learner).get_credentials()
    oauth = get_provider("caldav").oauth
    before = len(dav.proxy.requests)

    stored = oauth.stored_access_token(credentials)

    assert stored and stored == oauth.access_token(credentials).access_token
    assert len(dav.proxy.requests) == before


def _exported(learner_client, learner, dav, make_formation):
    assert _connect(learner_client, dav).status_code == 302
    integration = CalendarIntegration.objects.get(user=learner, provider="caldav")
    formation = make_formation(learners=(learner,), title="Gestion de projet")
    integration_export(integration=integration)
    return integration, formation, integration.exports.get(formation_uid=formation.uid)


def test_an_edit_made_since_the_last_read_is_caught_by_its_etag_and_set_back(
    learner_client, learner, dav, own_calendar, make_formation
):
    integration, formation, export = _exported(learner_client, learner, dav, make_formation)
    stored = dav.get(own_calendar, export.external_id).text
    # The learner retitles it in their calendar application; no import reads it before the
    # formation moves, so the export's update carries the ETag of before.
    dav.put(own_calendar, export.external_id, stored.replace("Gestion de projet", "Perso"))
    formation.start += timedelta(hours=1)
    formation.end += timedelta(hours=1)
    formation.save()
    dav.proxy.requests.clear()

    result = integration_export(integration=integration)

    assert (result.updated, result.failed) == (1, 0)
    puts = [method for method, path in dav.proxy.requests if method == "PUT"]
    assert len(puts) == 2  # refused on the old ETag (412), then written on the current one
    text = dav.get(own_calendar, export.external_id).text
    assert "SUMMARY:Gestion de projet" in text and "Perso" not in text
    export.refresh_from_db()
    assert export.remote_version == dav.get(own_calendar, export.external_id).headers["ETag"]


def test_an_event_the_learner_deleted_stays_deleted_when_the_formation_moves(
    learner_client, learner, dav, own_calendar, make_formation
):
    integration, formation, export = _exported(learner_client, learner, dav, make_formation)
    dav.delete(own_calendar, export.external_id)
    formation.start += timedelta(hours=1)
    formation.end += timedelta(hours=1)
    formation.save()

    result = integration_export(integration=integration)

    assert result.created == 0
    assert dav.get(own_calendar, export.external_id).status_code == 404
    export.refresh_from_db()
    assert export.state == export.State.REMOVED


def test_a_connected_account_sends_its_credentials_with_the_first_request(
    learner_client, learner, dav, own_calendar
):
    # Without the scheme kept, each new client is first refused (401) and asks again: one
    # request more, and at Radicale a 2 s pause (its answer to guessing).
    assert _connect(learner_client, dav).status_code == 302
    credentials = CalendarIntegration.objects.get(user=learner).get_credentials()
    assert credentials["auth_type"] == "basic"
    oauth, calendars = get_provider("caldav").oauth, get_provider("caldav").calendars
    forget_sessions()
    before = len(dav.proxy.requests)

    calendars.list_calendars(oauth.access_token(credentials).access_token)

    assert len(dav.proxy.requests) - before == 1


def test_a_refused_sync_token_lists_the_calendar_again_without_duplicates(
    learner_client, learner, dav, own_calendar, caplog
):
    start = timezone.now() + timedelta(days=1)
    dav.put(own_calendar, "a.ics", single("Avant", start))
    assert _connect(learner_client, dav).status_code == 302
    integration = CalendarIntegration.objects.get(user=learner, provider="caldav")
    calendar = _calendar(integration, own_calendar)
    _sync(integration)
    calendar.refresh_from_db()
    assert calendar.sync_token

    dav.invalidate_sync_tokens()  # the server forgot them (Radicale's cache cleared)
    dav.put(own_calendar, "b.ics", single("Après", start + timedelta(hours=2)))
    dav.delete(own_calendar, "a.ics")
    caplog.set_level(logging.INFO, logger="calendars.sync.importing")
    run = _sync(integration)

    assert not run.error, run.error
    assert "sync token refused, importing everything again" in caplog.text
    titles = list(CalendarEvent.objects.filter(calendar=calendar).values_list("title", flat=True))
    assert titles == ["Après"]


def test_a_site_with_a_webhook_address_opens_no_channel_for_caldav(
    learner_client, learner, dav, own_calendar, settings
):
    # A site reachable by Google and Microsoft: CalDAV has nothing to call it back with.
    settings.CALENDAR_PUSH_ENABLED = True
    settings.CALENDAR_WEBHOOK_URL = "https://formations.example.com"
    assert _connect(learner_client, dav).status_code == 302
    integration = CalendarIntegration.objects.get(user=learner, provider="caldav")

    run = _sync(integration)

    assert not run.error, run.error
    assert not integration.channels.exists()
