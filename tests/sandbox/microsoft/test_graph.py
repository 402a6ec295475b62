"""The sandbox's Microsoft Graph: users, calendars, calendarView, events, faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.sandbox.microsoft.helpers import (
    FORMATION_PROPERTY,
    WORK,
    WORK_2,
    Graph,
    error_code,
    event_body,
    outlook_token,
    wide_window,
)

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")


@pytest.fixture
def graph(sandbox) -> Graph:
    return Graph(sandbox, outlook_token(sandbox, WORK))


def live_in_window(calendar, start: datetime, end: datetime) -> set[str]:
    return {
        e.id
        for e in calendar.events.values()
        if not e.deleted
        and e.status != "cancelled"
        and not e.is_master
        and e.start_utc() < end
        and e.end_utc() > start
    }


def test_me_describes_the_signed_in_user(sandbox, graph):
    response = graph.get("/me")

    assert response.status_code == 200
    me = response.json()
    account = sandbox.store.account(WORK)
    assert me["id"] == account.uid
    assert me["displayName"] == "Camille Durand"
    assert me["mail"] == me["userPrincipalName"] == WORK
    assert (me["givenName"], me["surname"]) == ("Camille", "Durand")


def test_me_needs_user_read_and_writes_need_calendars_readwrite(sandbox):
    graph = Graph(sandbox, outlook_token(sandbox, WORK_2, scopes=["Calendars.Read"]))

    me = graph.get("/me")
    listing = graph.get("/me/calendars")
    create = graph.post("/me/events", json=event_body())

    assert me.status_code == 403 and error_code(me) == "Authorization_RequestDenied"
    assert listing.status_code == 200
    assert create.status_code == 403 and error_code(create) == "ErrorAccessDenied"


def test_missing_or_unknown_token_is_invalid_authentication_token(sandbox):
    anonymous = requests.get(f"{sandbox.https_url}/v1.0/me", verify=str(sandbox.ca_path), timeout=5)
    unknown = Graph(sandbox, "not-a-token").get("/me")

    for response in (anonymous, unknown):
        assert response.status_code == 401
        assert error_code(response) == "InvalidAuthenticationToken"
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_calendars_list_names_the_default_and_the_read_only_one(sandbox, graph):
    calendars = graph.get("/me/calendars").json()["value"]

    by_name = {c["name"]: c for c in calendars}
    assert set(by_name) == {"Calendar", "Équipe projet", "Jours fériés en France"}
    assert by_name["Calendar"]["isDefaultCalendar"] is True
    assert by_name["Jours fériés en France"]["canEdit"] is False
    assert by_name["Équipe projet"]["owner"] == {"name": "Camille Durand", "address": WORK}
    assert {"color", "hexColor", "changeKey", "canShare"} <= set(by_name["Calendar"])
    default = graph.get("/me/calendar").json()
    assert default["id"] == by_name["Calendar"]["id"]
    one = graph.get(f"/me/calendars/{by_name['Équipe projet']['id']}").json()
    assert one["name"] == "Équipe projet"
    first = graph.get("/me/calendars", params={"$top": 2}).json()
    assert len(first["value"]) == 2
    rest = graph.get(first["@odata.nextLink"]).json()
    assert [c["id"] for c in first["value"] + rest["value"]] == [c["id"] for c in calendars]


def test_malformed_and_unknown_ids_answer_as_graph_does(graph):
    malformed = graph.get("/me/calendars/not-an-id")
    unknown = graph.get("/me/events/AAMkAGI2TGuLAAA=")
    delete = graph.delete("/me/events/AAMkAGI2TGuLAAA=")

    assert malformed.status_code == 400 and error_code(malformed) == "ErrorInvalidIdMalformed"
    assert unknown.status_code == 404 and error_code(unknown) == "ErrorItemNotFound"
    assert unknown.json()["error"]["message"] == "The specified object was not found in the store."
    assert delete.status_code == 404


def test_unknown_graph_path_answers_in_graph_shape(graph):
    response = graph.get("/me/nonsense")

    assert response.status_code == 400
    assert error_code(response) == "BadRequest"


def test_calendar_view_requires_a_time_window(graph):
    response = graph.get("/me/calendarView")

    assert response.status_code == 400
    assert error_code(response) == "ErrorInvalidParameter"
    assert "StartDateTime and EndDateTime" in response.json()["error"]["message"]


def test_paths_and_parameters_are_case_insensitive_as_in_graph(graph):
    window = {k.lower(): v for k, v in wide_window().items()}

    response = graph.get("/me/calendarview", params={**window, "top": 3})

    assert response.status_code == 200
    assert len(response.json()["value"]) == 3


def test_calendar_view_pages_to_the_last_page_without_duplicates(sandbox, graph):
    window = wide_window()

    items, last, pages = graph.follow(
        "/me/calendarView", params=window, headers={"Prefer": "odata.maxpagesize=7"}
    )

    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    start = datetime.fromisoformat(window["startDateTime"])
    end = datetime.fromisoformat(window["endDateTime"])
    assert set(ids) == live_in_window(sandbox.store.account(WORK).primary, start, end)
    assert pages == -(-len(ids) // 7)
    assert "@odata.deltaLink" not in last


def test_calendar_view_shows_occurrences_and_exceptions_not_masters_or_cancelled(sandbox, graph):
    items, _, _ = graph.follow(
        "/me/calendarView", params=wide_window(), headers={"Prefer": "odata.maxpagesize=500"}
    )

    kinds = {item["type"] for item in items}
    assert kinds <= {"singleInstance", "occurrence", "exception"}
    assert {"occurrence", "exception"} <= kinds
    calendar = sandbox.store.account(WORK).primary
    for item in items:
        event = calendar.events[item["id"]]
        assert event.status != "cancelled"
        if item["type"] != "singleInstance":
            assert item["seriesMasterId"] == event.series_id
            assert item["originalStart"].endswith("Z")


def test_calendar_view_honours_top_and_orders_by_start(graph):
    response = graph.get(
        "/me/calendarView", params={**wide_window(), "$top": 5, "$orderby": "start/dateTime desc"}
    )

    body = response.json()
    assert len(body["value"]) == 5
    starts = [item["start"]["dateTime"] for item in body["value"]]
    assert starts == sorted(starts, reverse=True)
    assert "$skip=5" in body["@odata.nextLink"]


def test_outlook_timezone_preference_gives_local_times(graph):
    start = (datetime.now(UTC) + timedelta(days=10)).replace(
        hour=9, minute=0, second=0, microsecond=0, tzinfo=None
    )
    created = graph.create_event(body=event_body(start=start, time_zone="Romance Standard Time"))
    paris = ZoneInfo("Europe/Paris")
    utc_start = start.replace(tzinfo=paris).astimezone(UTC).replace(tzinfo=None)

    assert created["start"] == {"dateTime": utc_start.isoformat() + ".0000000", "timeZone": "UTC"}
    assert created["originalStartTimeZone"] == "Romance Standard Time"
    for zone in ("Romance Standard Time", "Europe/Paris"):
        response = graph.get(
            f"/me/events/{created['id']}", headers={"Prefer": f'outlook.timezone="{zone}"'}
        )
        assert response.json()["start"] == {
            "dateTime": start.isoformat() + ".0000000",
            "timeZone": zone,
        }
        assert response.headers["Preference-Applied"] == f'outlook.timezone="{zone}"'
    tokyo = graph.get(
        f"/me/events/{created['id']}", headers={"Prefer": 'outlook.timezone="Tokyo Standard Time"'}
    ).json()["start"]["dateTime"]
    expected = start.replace(tzinfo=paris).astimezone(ZoneInfo("Asia/Tokyo"))
    assert tokyo.startswith(expected.strftime("%Y-%m-%dT%H:%M:%S"))
    unknown = graph.get(
        f"/me/events/{created['id']}", headers={"Prefer": 'outlook.timezone="Mars/Olympus"'}
    )
    assert unknown.status_code == 400
    assert error_code(unknown) == "TimeZoneNotSupportedException"


def test_all_day_events_are_midnight_to_midnight_in_the_zone_asked_for(sandbox, graph):
    day = (datetime.now(UTC) + timedelta(days=20)).date()
    created = graph.create_event(
        body=event_body(
            start=datetime.combine(day, datetime.min.time()),
            hours=24,
            isAllDay=True,
        )
    )
    local = graph.get(
        f"/me/events/{created['id']}",
        headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'},
    ).json()

    assert created["isAllDay"] is True
    assert created["start"]["dateTime"] == f"{day.isoformat()}T00:00:00.0000000"
    assert local["start"] == {
        "dateTime": f"{day.isoformat()}T00:00:00.0000000",
        "timeZone": "Pacific Standard Time",
    }
    assert created["showAs"] == "free"
    bad = graph.post(
        "/me/events",
        json=event_body(
            start=datetime.combine(day, datetime.min.time()).replace(hour=9), isAllDay=True
        ),
    )
    assert bad.status_code == 400


def test_event_json_has_graphs_fields_and_a_link_to_the_sandbox_page(sandbox, graph):
    event = graph.create_event(categories=["Formation"], importance="high")

    assert event["type"] == "singleInstance"
    assert event["subject"] == "Formation sécurité"
    assert event["body"]["contentType"] == "html"
    assert "<p>Salle 2 &amp; café</p>" in event["body"]["content"]
    assert event["bodyPreview"] == "Salle 2 & café"
    assert event["location"]["displayName"] == "Salle Voltaire"
    assert event["organizer"] == {"emailAddress": {"name": "Camille Durand", "address": WORK}}
    assert event["categories"] == ["Formation"] and event["importance"] == "high"
    assert event["@odata.etag"] == f'W/"{event["changeKey"]}"'
    assert event["iCalUId"].startswith("040000008200E00074C5B7101A82E008")
    calendar = sandbox.store.account(WORK).primary
    assert event["webLink"] == (
        f"{sandbox.http_url}/_sandbox/events/{quote(WORK, safe='')}/{calendar.id}/{event['id']}"
    )
    page = requests.get(event["webLink"], timeout=5)
    assert page.status_code == 200 and "Formation sécurité" in page.text
    as_text = graph.get(
        f"/me/events/{event['id']}", headers={"Prefer": 'outlook.body-content-type="text"'}
    ).json()
    assert as_text["body"] == {"contentType": "text", "content": "Salle 2 & café"}
    selected = graph.get(f"/me/events/{event['id']}", params={"$select": "subject,start"}).json()
    assert set(selected) == {"@odata.etag", "id", "subject", "start"}


def test_event_is_created_read_updated_and_deleted(sandbox, graph):
    created = graph.create_event()

    fetched = graph.get(f"/me/events/{created['id']}")
    assert fetched.status_code == 200 and fetched.json()["subject"] == "Formation sécurité"
    patched = graph.patch(
        f"/me/events/{created['id']}",
        json={"subject": "Formation incendie"},
        headers={"If-Match": created["@odata.etag"]},
    )
    assert patched.status_code == 200
    assert patched.json()["subject"] == "Formation incendie"
    assert patched.json()["location"]["displayName"] == "Salle Voltaire"  # merged, not replaced
    assert patched.json()["changeKey"] != created["changeKey"]
    stale = graph.patch(
        f"/me/events/{created['id']}",
        json={"subject": "Trop tard"},
        headers={"If-Match": created["@odata.etag"]},
    )
    assert stale.status_code == 412
    calendar = sandbox.store.account(WORK).primary
    via_calendar = graph.get(f"/me/calendars/{calendar.id}/events/{created['id']}")
    assert via_calendar.json()["subject"] == "Formation incendie"
    assert graph.delete(f"/me/events/{created['id']}").status_code == 204
    assert graph.get(f"/me/events/{created['id']}").status_code == 404
    assert sandbox.store.account(WORK).primary.events[created["id"]].deleted


def test_unknown_property_in_a_write_is_refused(graph):
    response = graph.post("/me/events", json={**event_body(), "colour": "red"})

    assert response.status_code == 400
    assert error_code(response) == "RequestBodyRead"


def test_create_with_the_same_transaction_id_twice_makes_one_event(sandbox, graph):
    body = event_body(transactionId="formation-42-session-1")

    first = graph.post("/me/events", json=body)
    second = graph.post("/me/events", json=body)

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["transactionId"] == "formation-42-session-1"
    calendar = sandbox.store.account(WORK).primary
    made = [
        e
        for e in calendar.events.values()
        if e.transaction_id == "formation-42-session-1" and not e.deleted
    ]
    assert len(made) == 1


def test_a_transaction_id_is_the_mailboxs_not_the_calendars(sandbox, graph):
    """A create in another calendar that repeats a transactionId gives back the event made in
    the first one: a client that re-creates an event elsewhere must use a new one."""
    calendars = sandbox.store.account(WORK).calendars
    team = next(c for c in calendars.values() if c.name == "Équipe projet")
    body = event_body(transactionId="formation-43-0")

    first = graph.post("/me/events", json=body)
    elsewhere = graph.post(f"/me/calendars/{team.id}/events", json=body)

    assert elsewhere.status_code == 201
    assert elsewhere.json()["id"] == first.json()["id"]
    assert not [e for e in team.events.values() if e.transaction_id == "formation-43-0"]


def test_extended_property_is_stored_and_found_by_filter(sandbox, graph):
    calendar = sandbox.store.account(WORK).calendars
    team = next(c for c in calendar.values() if c.name == "Équipe projet")
    created = graph.create_event(
        f"/me/calendars/{team.id}/events",
        singleValueExtendedProperties=[{"id": FORMATION_PROPERTY, "value": "formation-7"}],
    )
    graph.create_event(
        f"/me/calendars/{team.id}/events",
        singleValueExtendedProperties=[{"id": FORMATION_PROPERTY, "value": "formation-8"}],
    )

    stored = team.events[created["id"]].private_properties
    assert stored == {FORMATION_PROPERTY.replace("{66F5", "{66f5"): "formation-7"}
    assert "singleValueExtendedProperties" not in created
    expand = f"singleValueExtendedProperties($filter=id eq '{FORMATION_PROPERTY}')"
    fetched = graph.get(f"/me/events/{created['id']}", params={"$expand": expand}).json()
    assert fetched["singleValueExtendedProperties"] == [
        {"id": FORMATION_PROPERTY, "value": "formation-7"}
    ]
    wanted = (
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{FORMATION_PROPERTY}' "
        "and ep/value eq 'formation-7')"
    )
    found = graph.get(f"/me/calendars/{team.id}/events", params={"$filter": wanted}).json()
    assert [e["id"] for e in found["value"]] == [created["id"]]
    in_default = graph.get("/me/events", params={"$filter": wanted}).json()
    assert in_default["value"] == []  # /me/events is the default calendar
    tagged = graph.get(
        f"/me/calendars/{team.id}/events",
        params={
            "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{FORMATION_PROPERTY}')"
        },
    ).json()
    assert {e["id"] for e in tagged["value"]} >= {created["id"]}
    bad = graph.get("/me/events", params={"$filter": "subject eq"})
    assert bad.status_code == 400 and error_code(bad) == "ErrorInvalidUrlQueryFilter"


def test_writes_to_a_read_only_calendar_are_denied(sandbox, graph):
    holidays = next(c for c in sandbox.store.account(WORK).calendars.values() if not c.can_edit)
    existing = next(iter(holidays.events))

    create = graph.post(f"/me/calendars/{holidays.id}/events", json=event_body())
    delete = graph.delete(f"/me/calendars/{holidays.id}/events/{existing}")

    assert create.status_code == delete.status_code == 403
    assert error_code(create) == "ErrorAccessDenied"


def test_recurring_event_created_through_graph_expands_into_occurrences(sandbox, graph):
    start = (datetime.now(UTC) + timedelta(days=30)).replace(
        hour=14, minute=0, second=0, microsecond=0, tzinfo=None
    )
    recurrence = {
        "pattern": {
            "type": "weekly",
            "interval": 1,
            "daysOfWeek": [start.strftime("%A").lower()],
            "firstDayOfWeek": "monday",
        },
        "range": {
            "type": "numbered",
            "startDate": start.date().isoformat(),
            "numberOfOccurrences": 3,
        },
    }
    master = graph.create_event(body=event_body("Cours hebdo", start=start, recurrence=recurrence))

    assert master["type"] == "seriesMaster"
    assert master["recurrence"]["pattern"]["type"] == "weekly"
    assert master["recurrence"]["range"]["numberOfOccurrences"] == 3
    instances = graph.get(f"/me/events/{master['id']}/instances", params=wide_window()).json()
    assert [i["type"] for i in instances["value"]] == ["occurrence"] * 3
    assert {i["seriesMasterId"] for i in instances["value"]} == {master["id"]}
    listed = graph.get(
        "/me/events", params={"$filter": f"iCalUId eq '{master['iCalUId']}'"}
    ).json()["value"]
    assert [e["id"] for e in listed] == [master["id"]]  # /events: masters, not occurrences
    occurrence = instances["value"][1]["id"]
    moved = graph.patch(f"/me/events/{occurrence}", json={"subject": "Cours déplacé"}).json()
    assert moved["type"] == "exception"


def test_events_list_pages_with_top(graph):
    first = graph.get("/me/events", params={"$top": 3}).json()

    assert len(first["value"]) == 3
    assert {e["type"] for e in first["value"]} <= {"singleInstance", "seriesMaster"}
    second = graph.get(first["@odata.nextLink"]).json()
    assert not {e["id"] for e in first["value"]} & {e["id"] for e in second["value"]}


@pytest.mark.parametrize(
    ("kind", "status", "code", "retry_after"),
    [
        ("rate_limit", 429, "TooManyRequests", "1"),
        ("quota_exceeded", 429, "TooManyRequests", "60"),
        ("server_error", 500, "generalException", None),
        ("unavailable", 503, "serviceNotAvailable", "1"),
        ("unauthorized", 401, "InvalidAuthenticationToken", None),
    ],
)
def test_graph_faults_answer_in_graphs_error_shape(sandbox, graph, kind, status, code, retry_after):
    sandbox.add_fault(kind, endpoint="graph.calendarView", account=WORK)

    response = graph.get("/me/calendarView", params=wide_window())

    assert response.status_code == status
    assert error_code(response) == code
    assert response.headers.get("Retry-After") == retry_after
    if status == 401:
        assert (
            response.json()["error"]["message"] == "Access token has expired or is not yet valid."
        )
    assert graph.get("/me/calendarView", params=wide_window()).status_code == 200


@pytest.mark.parametrize("kind", ["truncated", "malformed"])
def test_damaged_bodies_fail_json_decoding(sandbox, graph, kind):
    sandbox.add_fault(kind, endpoint="graph.events.list")

    response = graph.get("/me/events")

    assert response.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_slow_answer_times_a_client_out(sandbox, graph):
    sandbox.add_fault("slow", endpoint="graph.calendars.list", delay=0.5)

    with pytest.raises(requests.Timeout):
        graph.get("/me/calendars", timeout=0.2)


def test_fault_for_one_account_spares_the_others(sandbox, graph):
    sandbox.add_fault("server_error", endpoint="graph.*", account=WORK_2, times=0)

    assert graph.get("/me").status_code == 200
    assert Graph(sandbox, outlook_token(sandbox, WORK_2)).get("/me").status_code == 500


def test_counters_count_each_graph_endpoint(sandbox, graph):
    sandbox.reset_counters()
    created = graph.create_event()
    graph.get(f"/me/events/{created['id']}")
    graph.patch(f"/me/events/{created['id']}", json={"subject": "x"})
    graph.get("/me/calendarView", params=wide_window())
    graph.get("/me/calendars")
    graph.delete(f"/me/events/{created['id']}")

    assert {
        name: sandbox.count(name)
        for name in (
            "graph.events.create",
            "graph.events.get",
            "graph.events.update",
            "graph.calendarView",
            "graph.calendars.list",
            "graph.events.delete",
            "graph.me",
        )
    } == {
        "graph.events.create": 1,
        "graph.events.get": 1,
        "graph.events.update": 1,
        "graph.calendarView": 1,
        "graph.calendars.list": 1,
        "graph.events.delete": 1,
        "graph.me": 0,
    }


def test_events_carry_no_beta_only_occurrence_id(graph):
    """`occurrenceId` exists only in Graph's beta event model, not in v1.0."""
    event = graph.create_event()
    assert "occurrenceId" not in event
    refused = graph.patch(f"/me/events/{event['id']}", json={"occurrenceId": "x"})
    assert refused.status_code == 400


def test_select_on_calendars_gives_what_was_asked_and_the_id(graph):
    listed = graph.get("/me/calendars", params={"$select": "name,canEdit"})

    assert listed.status_code == 200
    for calendar in listed.json()["value"]:
        assert set(calendar) == {"id", "name", "canEdit"}
    unknown = graph.get("/me/calendars", params={"$select": "name,colour"})
    assert unknown.status_code == 400
    assert "colour" in unknown.json()["error"]["message"]
