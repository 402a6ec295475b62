"""GET /api/calendar-integration/events: the learner's events and formations over a range."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import Client

from accounts.models import Profile
from accounts.services import api_token_create
from calendars.api.schemas import AgendaItemOut
from calendars.models import CalendarEvent
from tests.calendars.client_helpers import error_of

URL = "/api/calendar-integration/events"
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def items(client: Client, start: str = "2027-04-01", end: str = "2027-05-01", **headers: str):
    response = client.get(URL, {"start": start, "end": end}, headers=headers)
    assert response.status_code == 200, response.content
    return response.json()


# --- authentication ---------------------------------------------------------------------


def test_events_answer_401_json_without_authentication(client, db):
    response = client.get(URL, {"start": "2027-04-01", "end": "2027-05-01"})

    assert error_of(response, 401)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_refused(client, db):
    response = client.get(URL, {"start": "2027-04-01", "end": "2027-05-01"},
                          headers={"Authorization": "Bearer fcal_nope"})  # fmt: skip
    assert error_of(response, 401)["code"] == "invalid_token"


def test_a_token_reads_the_events_in_the_learners_own_time_zone(
    learner, make_calendar, make_named_event
):
    Profile.objects.create(user=learner, time_zone="America/New_York")
    make_named_event(make_calendar(learner), "ev", start=datetime(2027, 4, 8, 7, 30, tzinfo=UTC))
    _, token = api_token_create(user=learner, name="tests")

    (event,) = items(Client(), Authorization=f"Bearer {token}")

    assert (event["start"], event["end"]) == (
        "2027-04-08T03:30:00-04:00",
        "2027-04-08T04:30:00-04:00",
    )


# --- shape ------------------------------------------------------------------------------


def test_events_and_formations_in_their_json_shape(
    learner_client, learner, make_formation, make_calendar, make_named_event
):
    formation = make_formation(title="Excel avancé", start=datetime(2027, 4, 8, 9, tzinfo=PARIS),
                               learners=(learner,))  # fmt: skip
    timed = make_named_event(make_calendar(learner, provider="outlook", name="Travail"), "AAMk=",
                             title="Point d'équipe", start=datetime(2027, 4, 8, 12, tzinfo=UTC),
                             html_link="https://outlook.example.com/e/AAMk")  # fmt: skip
    all_day = make_named_event(make_calendar(learner), "salon-2027", title="Salon",
                               all_day=date(2027, 4, 7), days=3,
                               zone="America/Los_Angeles")  # fmt: skip

    assert items(learner_client) == [
        {
            "id": f"event-{all_day.pk}",
            "title": "Salon",
            "start": "2027-04-07",
            "end": "2027-04-10",
            "allDay": True,
            "source": "google",
            "calendar": "Agenda",
            "externalId": "salon-2027",
            "url": "https://calendar.example.com/salon-2027",
            "response": None,
            "busy": True,
            "conflicts": [f"formation-{formation.pk}"],  # the salon covers its day
        },
        {
            "id": f"formation-{formation.pk}",
            "title": "Excel avancé",
            "start": "2027-04-08T09:00:00+02:00",
            "end": "2027-04-08T12:00:00+02:00",
            "allDay": False,
            "source": "formation",
            "calendar": None,
            "externalId": None,
            "url": f"http://testserver{formation.get_absolute_url()}",
            "response": None,
            "busy": True,
            "conflicts": [f"event-{all_day.pk}"],
        },
        {
            "id": f"event-{timed.pk}",
            "title": "Point d'équipe",
            "start": "2027-04-08T14:00:00+02:00",
            "end": "2027-04-08T15:00:00+02:00",
            "allDay": False,
            "source": "outlook",
            "calendar": "Travail",
            "externalId": "AAMk=",
            "url": "https://outlook.example.com/e/AAMk",
            "response": None,
            "busy": True,
            "conflicts": [],
        },
    ]


def test_every_item_is_what_its_schema_gives(
    learner_client, learner, make_formation, make_calendar, make_named_event
):
    """The list is built without a model per item: its JSON must still be the documented
    schema's, field by field and in its order."""
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    make_formation(title="Excel avancé", start=start, learners=(learner,))
    calendar = make_calendar(learner)
    make_named_event(calendar, "clash", start=start + timedelta(hours=1))  # a conflict
    make_named_event(calendar, "maybe", start=start + timedelta(days=1), response="tentative",
                     busy=False, html_link="")  # fmt: skip
    make_named_event(calendar, "salon", all_day=date(2027, 4, 12), days=2)
    names = {field.serialization_alias or name: name
             for name, field in AgendaItemOut.model_fields.items()}  # fmt: skip

    found = items(learner_client)

    assert len(found) == 4
    assert any(item["conflicts"] for item in found)
    for item in found:
        assert list(item) == list(names)
        values = {names[key]: value for key, value in item.items()}
        if item["allDay"]:  # JSON has no dates: read as the days the schema says they are
            values["start"], values["end"] = map(date.fromisoformat, (item["start"], item["end"]))
        model = AgendaItemOut.model_validate(values)
        assert model.model_dump(mode="json", by_alias=True) == item


def test_invitations_carry_the_learners_answer_and_declined_ones_are_left_out(
    learner_client, learner, make_calendar, make_named_event
):
    calendar = make_calendar(learner)
    start = datetime(2027, 4, 8, 12, tzinfo=UTC)
    for name, response, busy in [
        ("maybe", "tentative", True),
        ("no", "declined", True),
        ("unanswered", "needs_action", True),
        ("free", "", False),
    ]:
        event = make_named_event(calendar, name, title=name, start=start)
        CalendarEvent.objects.filter(pk=event.pk).update(response=response, busy=busy)

    listed = {i["externalId"]: (i["response"], i["busy"]) for i in items(learner_client)}

    assert listed == {
        "maybe": ("tentative", True),
        "unanswered": ("needs_action", True),
        "free": (None, False),
    }


def test_provider_text_is_returned_as_is_and_unsafe_links_are_dropped(
    learner_client, learner, make_calendar, make_named_event
):
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    make_named_event(make_calendar(learner), "x", title="<script>alert(1)</script>", start=start,
                     html_link="javascript:alert(1)")  # fmt: skip

    response = learner_client.get(URL, {"start": "2027-04-01", "end": "2027-05-01"})

    assert response["Content-Type"].startswith("application/json")
    (event,) = response.json()
    assert event["title"] == "<script>alert(1)</script>"
    assert event["url"] is None


def test_the_openapi_schema_documents_the_operation(learner_client):
    schema = learner_client.get("/api/openapi.json").json()
    operation = schema["paths"][URL]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"start", "end"}
    assert {"200", "400", "401"} <= set(operation["responses"])


# --- whose items, which items ------------------------------------------------------------


def test_another_learners_events_and_formations_are_absent(
    learner_client, learner, make_user, make_formation, make_calendar, make_named_event
):
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    other = make_user()
    make_formation(title="mine", start=start, learners=(learner,))
    make_formation(title="theirs", start=start, learners=(other,))
    make_formation(title="nobody's", start=start)
    make_named_event(make_calendar(learner), "mine-ev", start=start)
    make_named_event(make_calendar(other), "theirs-ev", start=start)

    assert sorted(item["title"] for item in items(learner_client)) == ["mine", "mine-ev"]

    other_client = Client()
    other_client.force_login(other)
    assert sorted(item["title"] for item in items(other_client)) == ["theirs", "theirs-ev"]


def test_calendars_not_imported_and_cancelled_items_are_absent(
    learner_client, learner, make_formation, make_calendar, make_named_event
):
    start = datetime(2027, 4, 8, 9, tzinfo=PARIS)
    primary = make_calendar(learner)
    make_named_event(primary, "shown", start=start)
    make_named_event(primary, "cancelled", start=start, status="cancelled")
    make_named_event(make_calendar(learner, external_id="holidays", import_enabled=False),
                     "not-imported", start=start)  # fmt: skip
    make_formation(title="cancelled formation", start=start, learners=(learner,),
                   status="cancelled")  # fmt: skip

    assert [item["title"] for item in items(learner_client)] == ["shown"]


@pytest.mark.parametrize(
    ("event", "shown"),
    [
        ({"start": datetime(2027, 3, 31, 23, tzinfo=PARIS), "hours": 1}, False),  # ends at start
        ({"start": datetime(2027, 3, 31, 23, tzinfo=PARIS), "hours": 2}, True),
        ({"start": datetime(2027, 3, 20, 9, tzinfo=PARIS), "hours": 24 * 60}, True),  # around
        ({"start": datetime(2027, 4, 30, 23, 59, tzinfo=PARIS), "hours": 1}, True),
        ({"start": datetime(2027, 5, 1, 0, tzinfo=PARIS), "hours": 1}, False),  # end excluded
        ({"all_day": date(2027, 3, 31)}, False),  # its end date is exclusive
        ({"all_day": date(2027, 3, 31), "days": 2}, True),
        ({"all_day": date(2027, 4, 30)}, True),
        ({"all_day": date(2027, 5, 1)}, False),
        ({"all_day": date(2027, 5, 1), "zone": "Pacific/Kiritimati"}, False),
        ({"all_day": date(2027, 3, 31), "zone": "Pacific/Pago_Pago"}, False),
    ],
)
def test_the_range_keeps_what_overlaps_its_days_in_the_learners_zone(
    learner_client, learner, make_calendar, make_named_event, event, shown
):
    make_named_event(make_calendar(learner), "edge", **event)

    assert [item["title"] for item in items(learner_client)] == (["edge"] if shown else [])


def test_an_event_near_midnight_belongs_to_the_learners_day(
    learner_client, learner, make_calendar, make_named_event
):
    make_named_event(make_calendar(learner), "late", start=datetime(2027, 4, 7, 22, 30, tzinfo=UTC))

    # 00:30 on 8 April in Paris, 18:30 on 7 April in New York.
    assert [i["start"] for i in items(learner_client, "2027-04-08", "2027-04-09")] == [
        "2027-04-08T00:30:00+02:00"
    ]
    assert items(learner_client, "2027-04-07", "2027-04-08") == []
    Profile.objects.create(user=learner, time_zone="America/New_York")
    assert [i["start"] for i in items(learner_client, "2027-04-07", "2027-04-08")] == [
        "2027-04-07T18:30:00-04:00"
    ]


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"start": "2027-04-01"},
        {"end": "2027-05-01"},
        {"start": "nope", "end": "2027-05-01"},
        {"start": "2027-02-30", "end": "2027-05-01"},
        {"start": "1801756800", "end": "2027-05-01"},  # a timestamp is not an ISO date
        {"start": "2027-04-01T00:00:00", "end": "2027-05-01"},
        {"start": "0001-01-01", "end": "0001-02-01"},
        {"start": "2027-04-01", "end": "99999-01-01"},
    ],
)
def test_missing_or_malformed_dates_are_a_400_naming_the_field(learner_client, query):
    response = learner_client.get(URL, query)

    error = error_of(response, 400)
    assert error["code"] == "invalid_input"
    assert {field["field"] for field in error["fields"]} <= {"start", "end"}
    assert error["fields"]


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        ("2027-05-01", "2027-04-01", "invalid_range"),
        ("2027-04-01", "2027-04-01", "invalid_range"),
        ("2027-01-01", "2028-01-03", "range_too_long"),
    ],
)
def test_a_backwards_or_too_long_range_is_a_400(learner_client, start, end, code):
    response = learner_client.get(URL, {"start": start, "end": end})
    assert error_of(response, 400)["code"] == code


def test_a_range_of_366_days_is_accepted(learner_client):
    assert items(learner_client, "2028-01-01", "2029-01-01") == []


def test_the_answer_costs_a_fixed_number_of_queries(
    learner_client, learner, make_formation, make_calendar, make_named_event,
    django_assert_max_num_queries,
):  # fmt: skip
    calendar = make_calendar(learner)
    counts = []
    for first, added in ((0, 5), (5, 195)):
        for n in range(first, first + added):
            start = datetime(2027, 4, 1, 8, tzinfo=PARIS) + timedelta(hours=3 * n)
            make_formation(start=start, learners=(learner,))
            make_named_event(calendar, f"ev-{n}", start=start)
        # The six of the items, and a seventh: the conflicts dismissed over the range.
        with django_assert_max_num_queries(7) as captured:
            found = items(learner_client, "2027-04-01", "2027-07-01")
        counts.append(len(captured))
        assert len(found) == 2 * (first + added)

    assert counts[0] == counts[1]


def test_a_script_with_a_token_is_answered_in_four_queries(
    client, bearer, learner, make_formation, django_assert_num_queries
):
    """The token, with its learner and their profile (the zone the answer is in), the
    conflicts dismissed over the range, and the items' two."""
    Profile.objects.update_or_create(user=learner, defaults={"time_zone": "America/Toronto"})
    make_formation(start=datetime(2027, 4, 2, 14, tzinfo=UTC), learners=(learner,))
    items(client, **bearer)  # the token's last use is written once a minute at most

    with django_assert_num_queries(4):
        found = items(client, **bearer)

    assert [item["start"] for item in found] == ["2027-04-02T10:00:00-04:00"]
