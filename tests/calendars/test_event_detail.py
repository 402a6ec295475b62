"""An event's details (calendars:event): a page of its own, and the panel the calendar page
shows in place; only ever the learner's own items, as the calendar shows them."""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, datetime

import pytest
from django.urls import reverse

from calendars.models import CalendarIntegration

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
START = datetime(2027, 4, 8, 9, 30, tzinfo=PARIS)
PANEL = {"HTTP_X_CALENDAR_PANEL": "1"}


def url(key: str, **query: str) -> str:
    address = reverse("calendars:event", args=[key])
    return f"{address}?{'&'.join(f'{k}={v}' for k, v in query.items())}" if query else address


def facts(text: str) -> dict[str, str]:
    pairs = re.findall(r"<dt>([^<]+)</dt>\s*<dd>(.*?)</dd>", text, re.S)
    return {term: re.sub(r"\s+", " ", value).strip() for term, value in pairs}


def test_an_imported_event_says_when_where_which_calendar_the_answer_and_links_out(
    learner_client, learner, make_calendar, make_event
):
    calendar = make_calendar(learner, provider="outlook", name="Travail")
    event = make_event(
        calendar,
        title="Point",
        start=START,
        hours=1.5,
        location="Bureau 4",
        response="tentative",
        html_link="https://outlook.example.com/e/1",
    )

    response = learner_client.get(url(f"event-{event.pk}", view="week", date="2027-04-08"))

    assert response.status_code == 200
    text = response.text
    assert '<h1 id="event-details-title"' in text and ">Point</h1>" in text
    assert facts(text) == {
        "Quand": "Jeudi 8 avril 2027, de 09:30 à 11:00",
        "Lieu": "Bureau 4",
        "Source": "Outlook",
        "Calendrier": "Travail",
        "Votre réponse": "Peut-être",
    }
    assert (
        '<a class="button" href="https://outlook.example.com/e/1" rel="noopener noreferrer">'
        "Ouvrir dans Outlook</a>"
    ) in text
    # Back to the calendar on the same view and date.
    back = f'href="{reverse("calendars:calendar")}?view=week&amp;date=2027-04-08"'
    assert f"<a {back}>" in text and "Retour au calendrier" in text


@pytest.mark.parametrize(("response", "said"), [("accepted", "Accepté"),
                                                ("needs_action", "Sans réponse"),
                                                ("", None)])  # fmt: skip
def test_the_learners_answer_to_an_invitation_is_said(
    learner_client, learner, make_calendar, make_event, response, said
):
    event = make_event(make_calendar(learner), start=START, response=response)

    text = learner_client.get(url(f"event-{event.pk}")).text

    assert facts(text).get("Votre réponse") == said


def test_an_all_day_event_over_several_days_says_its_days(
    learner_client, learner, make_calendar, make_event
):
    event = make_event(make_calendar(learner), all_day=date(2027, 4, 6), days=3, busy=False)

    text = learner_client.get(url(f"event-{event.pk}")).text

    assert facts(text)["Quand"] == "Du mardi 6 avril 2027 au jeudi 8 avril 2027, toute la journée"
    assert '<span class="badge badge-free">Disponible</span>' in text


def test_a_formation_links_to_its_page(learner_client, learner, make_formation):
    formation = make_formation(title="Excel", start=START, location="Salle Lumière",
                               learners=(learner,), status="cancelled")  # fmt: skip

    text = learner_client.get(url(f"formation-{formation.pk}", view="day", date="2027-04-08")).text

    assert facts(text) == {
        "Quand": "Jeudi 8 avril 2027, de 09:30 à 12:30",
        "Lieu": "Salle Lumière",
        "Source": "Formation",
    }
    assert f'<a class="button" href="{formation.get_absolute_url()}">Voir la formation</a>' in text
    assert '<span class="badge badge-cancelled">Annulée</span>' in text


def test_another_learners_event_or_formation_is_not_found(
    learner_client, make_user, make_calendar, make_event, make_formation
):
    other = make_user()
    event = make_event(make_calendar(other), title="Secret", start=START)
    formation = make_formation(title="Secrète", start=START, learners=(other,))
    unattended = make_formation(title="Sans inscrit", start=START)

    for key in (f"event-{event.pk}", f"formation-{formation.pk}", f"formation-{unattended.pk}"):
        for headers in ({}, PANEL):
            response = learner_client.get(url(key), **headers)
            assert response.status_code == 404
            assert "Secr" not in response.text and "Sans inscrit" not in response.text


def test_events_the_calendar_does_not_show_are_not_found(
    learner_client, learner, make_calendar, make_event
):
    primary = make_calendar(learner)
    hidden = [
        make_event(primary, start=START, status="cancelled"),
        make_event(primary, start=START, response="declined"),
        make_event(make_calendar(learner, external_id="work", import_enabled=False), start=START),
    ]
    outlook = make_calendar(learner, provider="outlook")
    hidden.append(make_event(outlook, start=START))
    CalendarIntegration.objects.filter(pk=outlook.integration_id).update(import_enabled=False)
    shown = make_event(primary, start=START)

    assert learner_client.get(url(f"event-{shown.pk}")).status_code == 200
    for event in hidden:
        assert learner_client.get(url(f"event-{event.pk}")).status_code == 404


BAD_KEYS = ["event-0", "event-99999", "event-", "event-1x", "calendar-1", "formation-01",
            "event-123456789012345678901234567890", "event--1"]  # fmt: skip


def test_an_event_of_a_calendar_hidden_on_the_page_keeps_its_details(
    learner_client, learner, make_calendar, make_event
):
    calendar = make_calendar(learner)
    event = make_event(calendar, title="Caché", start=START)
    calendar.shown = False
    calendar.save()

    day = learner_client.get(reverse("calendars:calendar"), {"view": "day", "date": "2027-04-08"})
    assert "Caché" not in day.text
    assert learner_client.get(url(f"event-{event.pk}")).status_code == 200


@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_bad_key_is_not_found(learner_client, learner, make_calendar, make_event, key):
    make_event(make_calendar(learner), start=START)
    assert learner_client.get(url(key)).status_code == 404


def test_provider_data_is_escaped(learner_client, learner, make_calendar, make_event):
    event = make_event(
        make_calendar(learner, name="<b>Agenda</b>"),
        start=START,
        title="<script>alert(1)</script>",
        location='<img src=x onerror="alert(2)">',
        html_link='https://example.com/"><script>alert(3)</script>',
    )

    for headers in ({}, PANEL):
        text = learner_client.get(url(f"event-{event.pk}"), **headers).text

        assert "<script>" not in text
        assert "<img" not in text and "<b>Agenda" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in text
        assert "&lt;b&gt;Agenda&lt;/b&gt;" in text
        assert 'href="https://example.com/&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;"' in text


@pytest.mark.parametrize("link", ["javascript:alert(1)", "data:text/html,x", ""])
def test_a_link_that_is_not_http_is_not_offered(
    learner_client, learner, make_calendar, make_event, link
):
    event = make_event(make_calendar(learner), start=START, html_link=link)

    text = learner_client.get(url(f"event-{event.pk}")).text

    assert "Ouvrir dans" not in text
    assert "alert(1)" not in text


def test_the_panel_is_the_details_alone_with_a_heading_one_level_down(
    learner_client, learner, make_calendar, make_event
):
    event = make_event(make_calendar(learner), title="Point", start=START)

    response = learner_client.get(url(f"event-{event.pk}"), **PANEL)

    assert response.status_code == 200
    text = response.text.strip()
    assert text.startswith('<section id="event-details"') and text.endswith("</section>")
    assert '<h2 id="event-details-title"' in text and ">Point</h2>" in text
    assert "X-Calendar-Panel" in response["Vary"]  # never the page for the panel from a cache


def test_the_way_back_keeps_a_valid_view_and_date_only(
    learner_client, learner, make_calendar, make_event
):
    event = make_event(make_calendar(learner), start=START)
    calendar = reverse("calendars:calendar")

    for query, back in [
        ({"view": "day", "date": "2027-04-08"}, f"{calendar}?view=day&amp;date=2027-04-08"),
        ({"view": "year", "date": "nope"}, calendar),
        ({"view": "javascript:alert(1)"}, calendar),
        ({}, calendar),
    ]:
        text = learner_client.get(url(f"event-{event.pk}", **query)).text
        assert f'<p class="breadcrumb"><a href="{back}">' in text


def test_the_details_cost_one_query_beyond_the_session(
    learner_client, learner, make_calendar, make_event, make_formation,
    django_assert_num_queries,
):  # fmt: skip
    event = make_event(make_calendar(learner), start=START)
    formation = make_formation(start=START, learners=(learner,))

    for key in (f"event-{event.pk}", f"formation-{formation.pk}"):
        # The panel: session, user with their profile (time zone), the item.
        with django_assert_num_queries(3):
            assert learner_client.get(url(key), **PANEL).status_code == 200
        # The page adds the base template's banner: the integrations to reconnect.
        with django_assert_num_queries(4):
            assert learner_client.get(url(key)).status_code == 200


def test_signed_out_visitors_are_sent_to_sign_in(client, db):
    response = client.get(url("event-1"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
