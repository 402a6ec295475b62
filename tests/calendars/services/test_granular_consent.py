"""Google's granular consent, through the pages and the sandbox's consent screen: a learner
who unticks the calendar list is told at once and offered to grant just that; one who
unticks the events connects nothing; a permission withdrawn later asks for reconnection."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from django.urls import reverse

from calendars.models import CalendarIntegration, SyncRun
from calendars.providers.google.oauth import CALENDAR_EVENTS, CALENDAR_LIST
from calendars.sync.runs import integration_run
from tests.calendars.client_helpers import messages_of, text_of
from tests.calendars.connect_helpers import GOOGLE_ACCOUNT, connect
from tests.sandbox.google.helpers import consent

ASK_AGAIN = "Autoriser l'accès à la liste de mes agendas"
NOT_GRANTED = "Vous n'avez pas autorisé l'accès à la liste de vos agendas"


def _start(client, **data):
    response = client.post(reverse("calendars:connect", args=["google"]), data)
    assert response.status_code == 302
    return response["Location"]


def _back(client, location):
    back = urlsplit(location)
    return client.get(f"{back.path}?{back.query}", follow=True)


def test_the_calendar_list_unticked_is_said_at_once_with_a_button_for_just_that(
    sandbox_settings, learner, learner_client
):
    location = consent(
        sandbox_settings, _start(learner_client), GOOGLE_ACCOUNT, untick=(CALENDAR_LIST,)
    )
    sandbox_settings.reset_counters()

    page = _back(learner_client, location)

    integration = CalendarIntegration.objects.get(user=learner, provider="google")
    assert integration.missing_permission
    assert sandbox_settings.count("google.calendarList.list") == 0  # known from the grant
    assert CALENDAR_EVENTS in integration.scopes and CALENDAR_LIST not in integration.scopes
    assert not any("est connecté" in m for m in messages_of(page))
    assert NOT_GRANTED in text_of(page) and ASK_AGAIN in text_of(page)
    assert not SyncRun.objects.exists()  # no sync that can only fail

    again = _start(learner_client, missing="1")
    asked = parse_qs(urlsplit(again).query)
    assert asked["scope"] == [f"openid {CALENDAR_EVENTS} {CALENDAR_LIST}"]
    assert asked["include_granted_scopes"] == ["true"]
    assert asked["login_hint"] == [GOOGLE_ACCOUNT]
    page = _back(learner_client, consent(sandbox_settings, again, GOOGLE_ACCOUNT))

    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.CONNECTED
    assert not integration.missing_permission
    assert {CALENDAR_EVENTS, CALENDAR_LIST} <= set(integration.scopes)
    assert integration.calendars.exists()
    assert any("est connecté" in m for m in messages_of(page))
    assert NOT_GRANTED not in text_of(page)


def test_the_events_unticked_connect_nothing_and_say_why(sandbox_settings, learner, learner_client):
    location = consent(
        sandbox_settings, _start(learner_client), GOOGLE_ACCOUNT, untick=(CALENDAR_EVENTS,)
    )

    page = _back(learner_client, location)

    assert not CalendarIntegration.objects.exists()
    assert any("événements de votre agenda" in m for m in messages_of(page))


def _withdraw(sandbox, scope):
    answer = requests.post(
        f"{sandbox.http_url}/_sandbox/api/accounts/{GOOGLE_ACCOUNT}/withdraw-scope",
        json={"scope": scope},
        timeout=5,
    )
    assert answer.status_code == 204


def test_the_events_permission_withdrawn_later_asks_for_it_again(
    sandbox_settings, learner, learner_client
):
    """403 insufficientPermissions (its reason also in details[]: ErrorInfo
    ACCESS_TOKEN_SCOPE_INSUFFICIENT) marks the integration, with the same message."""
    integration = connect(sandbox_settings, learner, "google")
    _withdraw(sandbox_settings, CALENDAR_EVENTS)

    run = integration_run(integration_id=integration.pk, trigger=SyncRun.Trigger.PERIODIC)

    integration.refresh_from_db()
    assert run is not None and run.error
    assert integration.missing_permission
    page = learner_client.get(reverse("settings_calendars"))
    assert NOT_GRANTED in text_of(page) and ASK_AGAIN in text_of(page)
    # The button asks for the calendar permissions again; granted, all is as before.
    again = _start(learner_client, missing="1")
    _back(learner_client, consent(sandbox_settings, again, GOOGLE_ACCOUNT))
    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.CONNECTED
    run = integration_run(integration_id=integration.pk, trigger=SyncRun.Trigger.PERIODIC)
    assert run.error == ""


def test_the_calendar_list_withdrawn_later_asks_for_it_again(
    sandbox_settings, learner, learner_client
):
    integration = connect(sandbox_settings, learner, "google")
    _withdraw(sandbox_settings, CALENDAR_LIST)

    page = learner_client.post(reverse("settings_calendar_refresh", args=["google"]), follow=True)

    integration.refresh_from_db()
    assert integration.missing_permission
    assert NOT_GRANTED in text_of(page) and ASK_AGAIN in text_of(page)
