"""Calendar API v3 calendars and events in the sandbox, through google-api-python-client."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from googleapiclient.errors import HttpError

from sandbox.store import BASE32HEX
from tests.sandbox.google.helpers import (
    ALEX,
    CAMILLE,
    calendar_service,
    google_credentials,
    list_all,
    timed_event,
)

HOLIDAYS = "fr.french#holiday@group.v.calendar.google.test"


def client_id() -> str:
    return "".join(secrets.choice(BASE32HEX) for _ in range(20))


def tag() -> str:
    """A private property value no other test uses, to find this test's events."""
    return uuid.uuid4().hex


def reason(error: HttpError) -> str:
    return error.error_details[0]["reason"]


def test_calendar_list_gives_each_calendar_with_its_access_role(service):
    entries = {e["id"]: e for e in service.calendarList().list().execute()["items"]}

    assert entries[CAMILLE]["primary"] is True
    assert entries[CAMILLE]["accessRole"] == "owner"
    assert entries[HOLIDAYS]["accessRole"] == "reader"
    assert all(e["kind"] == "calendar#calendarListEntry" for e in entries.values())
    assert len(entries) == 3
    assert service.calendarList().get(calendarId="primary").execute()["id"] == CAMILLE
    assert service.calendarList().get(calendarId=HOLIDAYS).execute()["summary"]
    # calendars.get needs a calendars scope: calendarlist.readonly is not one (discovery).
    with pytest.raises(HttpError) as caught:
        service.calendars().get(calendarId=HOLIDAYS).execute()
    assert caught.value.status_code == 403


def test_calendar_list_min_access_role_writer_leaves_read_only_calendars_out(service):
    listed = service.calendarList().list(minAccessRole="writer").execute()["items"]
    assert HOLIDAYS not in {e["id"] for e in listed}
    assert len(listed) == 2


def test_calendar_list_pages_with_max_results(service):
    first = service.calendarList().list(maxResults=2).execute()
    second = service.calendarList().list(maxResults=2, pageToken=first["nextPageToken"]).execute()
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert "nextSyncToken" in second


def test_events_list_pages_to_the_end_with_no_duplicates(service, sandbox):
    items, last = list_all(service, calendarId="primary", maxResults=7)
    ids = [item["id"] for item in items]

    assert len(ids) == len(set(ids)) > 7
    assert sandbox.count("google.events.list") == -(-len(ids) // 7)
    assert "nextSyncToken" in last and "nextPageToken" not in last
    whole = service.events().list(calendarId="primary", maxResults=2500).execute()
    assert {item["id"] for item in whole["items"]} == set(ids)


def test_max_results_above_2500_is_capped_not_refused(service):
    page = service.events().list(calendarId="primary", maxResults=5000).execute()
    assert "nextSyncToken" in page


def test_incremental_list_brings_inserts_patches_and_deletes(service):
    _, last = list_all(service, calendarId="primary")
    token = last["nextSyncToken"]
    kept = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event("Kept", "2026-03-02T10:00:00", "2026-03-02T11:00:00"),
        )
        .execute()
    )
    dropped = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event("Gone", "2026-03-03T10:00:00", "2026-03-03T11:00:00"),
        )
        .execute()
    )
    service.events().patch(
        calendarId="primary", eventId=kept["id"], body={"summary": "Kept (v2)"}
    ).execute()
    service.events().delete(calendarId="primary", eventId=dropped["id"]).execute()

    changes, last = list_all(service, calendarId="primary", syncToken=token)
    by_id = {item["id"]: item for item in changes}
    assert set(by_id) == {kept["id"], dropped["id"]}
    assert by_id[kept["id"]]["summary"] == "Kept (v2)"
    assert by_id[dropped["id"]] == {
        "kind": "calendar#event",
        "etag": by_id[dropped["id"]]["etag"],
        "id": dropped["id"],
        "status": "cancelled",
    }
    again, _ = list_all(service, calendarId="primary", syncToken=last["nextSyncToken"])
    assert again == []


def test_incremental_list_pages_too(service):
    _, last = list_all(service, calendarId="primary")
    marker = tag()
    for day in range(1, 6):
        service.events().insert(
            calendarId="primary",
            body=timed_event(
                "Paged",
                f"2026-04-0{day}T09:00:00",
                f"2026-04-0{day}T10:00:00",
                extendedProperties={"private": {"test": marker}},
            ),
        ).execute()

    changes, final = list_all(
        service, calendarId="primary", syncToken=last["nextSyncToken"], maxResults=2
    )
    assert len(changes) == len({c["id"] for c in changes}) == 5
    assert "nextSyncToken" in final


def test_sync_token_after_invalidate_sync_state_is_410_full_sync_required(service, sandbox):
    _, last = list_all(service, calendarId="primary")
    sandbox.store.invalidate_sync_state(sandbox.store.account(CAMILLE))

    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId="primary", syncToken=last["nextSyncToken"]).execute()
    assert caught.value.status_code == 410
    assert reason(caught.value) == "fullSyncRequired"
    _, fresh = list_all(service, calendarId="primary")
    service.events().list(calendarId="primary", syncToken=fresh["nextSyncToken"]).execute()


def test_garbage_sync_token_is_410(service):
    with pytest.raises(HttpError) as caught:
        service.events().list(
            calendarId="primary", syncToken="CPDAlvWDx70CEPDAlvWDx70CGAU="
        ).execute()
    assert caught.value.status_code == 410


def test_sync_token_of_another_calendar_is_410(service):
    _, last = list_all(service, calendarId=HOLIDAYS)
    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId="primary", syncToken=last["nextSyncToken"]).execute()
    assert caught.value.status_code == 410


def test_list_with_sync_token_and_time_min_is_rejected(service):
    _, last = list_all(service, calendarId="primary")
    with pytest.raises(HttpError) as caught:
        service.events().list(
            calendarId="primary",
            syncToken=last["nextSyncToken"],
            timeMin="2026-01-01T00:00:00Z",
        ).execute()
    assert caught.value.status_code == 400


def test_order_by_start_time_needs_single_events(service):
    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId="primary", orderBy="startTime").execute()
    assert caught.value.status_code == 400
    items = (
        service.events()
        .list(calendarId="primary", orderBy="startTime", singleEvents=True, maxResults=50)
        .execute()["items"]
    )
    starts = [
        datetime.fromisoformat(i["start"].get("dateTime") or i["start"]["date"] + "T00:00+01:00")
        for i in items
    ]
    assert starts == sorted(starts)


def test_single_events_expands_series_with_moved_and_cancelled_occurrences(service):
    master = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event(
                "Cours d'anglais",
                "2026-05-04T18:00:00",
                "2026-05-04T19:00:00",
                recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"],
            ),
        )
        .execute()
    )
    uid = master["iCalUID"]
    instances = service.events().instances(calendarId="primary", eventId=master["id"]).execute()
    ids = [i["id"] for i in instances["items"]]
    assert ids == [
        f"{master['id']}_20260504T160000Z",
        f"{master['id']}_20260511T160000Z",
        f"{master['id']}_20260518T160000Z",
        f"{master['id']}_20260525T160000Z",
    ]
    service.events().patch(
        calendarId="primary",
        eventId=ids[1],
        body={
            "start": {"dateTime": "2026-05-11T20:00:00+02:00"},
            "end": {"dateTime": "2026-05-11T21:00:00+02:00"},
        },
    ).execute()
    service.events().delete(calendarId="primary", eventId=ids[2]).execute()

    expanded, _ = list_all(service, calendarId="primary", singleEvents=True, iCalUID=uid)
    assert [e["id"] for e in expanded] == [ids[0], ids[1], ids[3]]
    moved = next(e for e in expanded if e["id"] == ids[1])
    assert moved["start"]["dateTime"] == "2026-05-11T20:00:00+02:00"
    assert moved["recurringEventId"] == master["id"]
    assert moved["originalStartTime"]["dateTime"] == "2026-05-11T18:00:00+02:00"
    with_deleted, _ = list_all(
        service, calendarId="primary", singleEvents=True, iCalUID=uid, showDeleted=True
    )
    assert {e["id"]: e["status"] for e in with_deleted}[ids[2]] == "cancelled"

    # Not expanded: the master with its rule, and the exceptions (cancelled ones included,
    # as the reference says of showDeleted=false with singleEvents=false).
    compact, _ = list_all(service, calendarId="primary", iCalUID=uid)
    by_id = {e["id"]: e for e in compact}
    assert set(by_id) == {master["id"], ids[1], ids[2]}
    assert by_id[master["id"]]["recurrence"] == ["RRULE:FREQ=WEEKLY;COUNT=4"]
    assert by_id[ids[2]]["status"] == "cancelled"
    assert by_id[ids[2]]["recurringEventId"] == master["id"]


def test_generated_series_have_google_instance_ids(service):
    items, _ = list_all(service, calendarId="primary", singleEvents=True, showDeleted=True)
    instances = [i for i in items if "recurringEventId" in i]
    assert instances
    for instance in instances:
        assert re.fullmatch(
            re.escape(instance["recurringEventId"]) + r"_\d{8}(T\d{6}Z)?", instance["id"]
        )
    assert any(i["status"] == "cancelled" for i in instances)
    assert not any("recurrence" in i for i in items)


def test_patching_a_series_master_updates_its_occurrences(service):
    master = service.events().insert(
        calendarId="primary",
        body=timed_event(
            "Stand-up", "2026-06-01T09:00:00", "2026-06-01T09:15:00",
            recurrence=["RRULE:FREQ=DAILY;COUNT=3"],
        ),
    ).execute()  # fmt: skip
    service.events().patch(
        calendarId="primary", eventId=master["id"], body={"summary": "Stand-up (new room)"}
    ).execute()
    instances = service.events().instances(calendarId="primary", eventId=master["id"]).execute()
    assert [i["summary"] for i in instances["items"]] == ["Stand-up (new room)"] * 3

    service.events().delete(calendarId="primary", eventId=master["id"]).execute()
    expanded, _ = list_all(
        service, calendarId="primary", singleEvents=True, iCalUID=master["iCalUID"]
    )
    assert expanded == []


def test_show_deleted_brings_cancelled_events_only_when_asked(service):
    marker = tag()
    event = service.events().insert(
        calendarId="primary",
        body=timed_event(
            "Annulé", "2026-03-10T10:00:00", "2026-03-10T11:00:00",
            extendedProperties={"private": {"test": marker}},
        ),
    ).execute()  # fmt: skip
    service.events().delete(calendarId="primary", eventId=event["id"]).execute()
    query = {"calendarId": "primary", "privateExtendedProperty": f"test={marker}"}

    assert service.events().list(**query).execute()["items"] == []
    shown = service.events().list(showDeleted=True, **query).execute()["items"]
    assert [(e["id"], e["status"]) for e in shown] == [(event["id"], "cancelled")]
    assert (
        service.events().get(calendarId="primary", eventId=event["id"]).execute()["status"]
        == "cancelled"
    )


def test_private_extended_property_filters_events(service):
    marker = tag()
    for value in ("42", "43"):
        service.events().insert(
            calendarId="primary",
            body=timed_event(
                f"Formation {value}", "2026-03-12T10:00:00", "2026-03-12T11:00:00",
                extendedProperties={"private": {"test": marker, "formationId": value}},
            ),
        ).execute()  # fmt: skip

    found = (
        service.events()
        .list(
            calendarId="primary",
            privateExtendedProperty=[f"test={marker}", "formationId=42"],
        )
        .execute()["items"]
    )
    assert [e["summary"] for e in found] == ["Formation 42"]
    assert found[0]["extendedProperties"]["private"] == {"test": marker, "formationId": "42"}


def test_insert_with_a_client_id_then_the_same_id_again_is_409_duplicate(service):
    event_id = client_id()
    body = timed_event("Idempotent", "2026-03-15T10:00:00", "2026-03-15T11:00:00", id=event_id)
    created = service.events().insert(calendarId="primary", body=body).execute()
    assert created["id"] == event_id
    assert created["iCalUID"] == f"{event_id}@google.com"

    with pytest.raises(HttpError) as caught:
        service.events().insert(calendarId="primary", body=body).execute()
    assert caught.value.status_code == 409
    assert reason(caught.value) == "duplicate"
    service.events().delete(calendarId="primary", eventId=event_id).execute()
    with pytest.raises(HttpError) as caught:
        service.events().insert(calendarId="primary", body=body).execute()
    assert caught.value.status_code == 409


@pytest.mark.parametrize("bad_id", ["abc", "UPPERCASE123", "with-dash-123", "wxyz12345"])
def test_insert_with_an_invalid_id_is_400(service, bad_id):
    body = timed_event("Bad id", "2026-03-15T10:00:00", "2026-03-15T11:00:00", id=bad_id)
    with pytest.raises(HttpError) as caught:
        service.events().insert(calendarId="primary", body=body).execute()
    assert caught.value.status_code == 400
    assert "Invalid resource id value." in caught.value.reason


def test_insert_without_end_is_400_required(service):
    with pytest.raises(HttpError) as caught:
        service.events().insert(
            calendarId="primary", body={"start": {"dateTime": "2026-03-15T10:00:00Z"}}
        ).execute()
    assert caught.value.status_code == 400
    assert reason(caught.value) == "required"


def test_get_patch_and_update_round_trip(service, sandbox):
    created = service.events().insert(
        calendarId="primary",
        conferenceDataVersion=1,
        body=timed_event(
            "Atelier", "2026-03-20T14:00:00", "2026-03-20T16:00:00",
            description="Salle 3", location="Paris",
            conferenceData={"createRequest": {"requestId": "r1"}},
            colorId="5",
        ),
    ).execute()  # fmt: skip
    fetched = service.events().get(calendarId="primary", eventId=created["id"]).execute()
    assert fetched == created
    assert created["start"] == {"dateTime": "2026-03-20T14:00:00+01:00", "timeZone": "Europe/Paris"}
    assert created["hangoutLink"].startswith("https://meet.")
    assert created["colorId"] == "5"
    assert created["htmlLink"] == (
        f"{sandbox.http_url}/_sandbox/events/{quote(CAMILLE, safe='')}/"
        f"{quote(CAMILLE, safe='')}/{created['id']}"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", created["updated"])

    patched = (
        service.events()
        .patch(calendarId="primary", eventId=created["id"], body={"summary": "Atelier (suite)"})
        .execute()
    )
    assert (patched["summary"], patched["description"], patched["location"]) == (
        "Atelier (suite)", "Salle 3", "Paris",
    )  # fmt: skip
    assert patched["etag"] != created["etag"]
    assert patched["hangoutLink"] == created["hangoutLink"]

    updated = (
        service.events()
        .update(
            calendarId="primary",
            eventId=created["id"],
            body=timed_event("Atelier", "2026-03-20T15:00:00", "2026-03-20T17:00:00"),
        )
        .execute()
    )
    assert "description" not in updated and "location" not in updated
    assert updated["sequence"] == 1


def test_all_day_events_use_dates_with_an_exclusive_end(service):
    created = (
        service.events()
        .insert(
            calendarId="primary",
            body={
                "summary": "Séminaire",
                "start": {"date": "2026-07-06"},
                "end": {"date": "2026-07-08"},
            },
        )
        .execute()
    )
    assert (created["start"], created["end"]) == ({"date": "2026-07-06"}, {"date": "2026-07-08"})
    inside = (
        service.events()
        .list(
            calendarId="primary",
            iCalUID=created["iCalUID"],
            timeMin="2026-07-07T12:00:00+02:00",
            timeMax="2026-07-07T13:00:00+02:00",
        )
        .execute()["items"]
    )
    after = (
        service.events()
        .list(
            calendarId="primary",
            iCalUID=created["iCalUID"],
            timeMin="2026-07-08T00:00:00+02:00",
        )
        .execute()["items"]
    )
    assert len(inside) == 1 and after == []


def test_time_window_keeps_the_events_that_overlap_it(service):
    marker = tag()
    for start, end in [("09:00", "10:00"), ("10:30", "11:30"), ("12:00", "13:00")]:
        service.events().insert(
            calendarId="primary",
            body=timed_event(
                start, f"2026-08-03T{start}:00", f"2026-08-03T{end}:00",
                extendedProperties={"private": {"test": marker}},
            ),
        ).execute()  # fmt: skip

    found = (
        service.events()
        .list(
            calendarId="primary",
            privateExtendedProperty=f"test={marker}",
            timeMin="2026-08-03T09:30:00+02:00",
            timeMax="2026-08-03T12:00:00+02:00",
            singleEvents=True,
            orderBy="startTime",
        )
        .execute()["items"]
    )
    assert [e["summary"] for e in found] == ["09:00", "10:30"]


def test_deleting_a_deleted_event_is_410(service):
    event = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event("x", "2026-03-21T10:00:00", "2026-03-21T11:00:00"),
        )
        .execute()
    )
    service.events().delete(calendarId="primary", eventId=event["id"]).execute()
    with pytest.raises(HttpError) as caught:
        service.events().delete(calendarId="primary", eventId=event["id"]).execute()
    assert caught.value.status_code == 410
    assert reason(caught.value) == "deleted"


def test_writing_to_a_read_only_calendar_is_403(service):
    with pytest.raises(HttpError) as caught:
        service.events().insert(
            calendarId=HOLIDAYS, body=timed_event("x", "2026-03-21T10:00:00", "2026-03-21T11:00:00")
        ).execute()
    assert caught.value.status_code == 403
    assert reason(caught.value) == "requiredAccessLevel"


def test_unknown_calendar_and_unknown_event_are_404(service):
    for call in (
        service.events().list(calendarId="nobody@gmail.test"),
        service.events().get(calendarId="primary", eventId="doesnotexist0"),
    ):
        with pytest.raises(HttpError) as caught:
            call.execute()
        assert caught.value.status_code == 404
        assert reason(caught.value) == "notFound"


def test_another_accounts_calendar_is_not_reachable(sandbox):
    service = calendar_service(sandbox, google_credentials(sandbox, ALEX))
    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId=CAMILLE).execute()
    assert caught.value.status_code == 404


def test_updated_min_brings_changes_and_deletions_since(service):
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    event = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event("Neuf", "2026-03-22T10:00:00", "2026-03-22T11:00:00"),
        )
        .execute()
    )
    gone = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event("Parti", "2026-03-22T12:00:00", "2026-03-22T13:00:00"),
        )
        .execute()
    )
    service.events().delete(calendarId="primary", eventId=gone["id"]).execute()

    items, _ = list_all(service, calendarId="primary", updatedMin=since)
    statuses = {i["id"]: i["status"] for i in items}
    assert statuses[event["id"]] == "confirmed"
    assert statuses[gone["id"]] == "cancelled"


def test_time_zone_parameter_sets_the_offsets_shown(service):
    event = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event("TZ", "2026-03-23T10:00:00", "2026-03-23T11:00:00"),
        )
        .execute()
    )
    shown = (
        service.events()
        .get(calendarId="primary", eventId=event["id"], timeZone="Asia/Tokyo")
        .execute()
    )
    assert shown["start"] == {"dateTime": "2026-03-23T18:00:00+09:00", "timeZone": "Europe/Paris"}


def test_a_series_master_is_listed_when_one_of_its_occurrences_meets_the_window(service):
    master = service.events().insert(
        calendarId="primary",
        body=timed_event(
            "Hebdo", "2026-05-05T08:00:00", "2026-05-05T09:00:00",
            recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"],
        ),
    ).execute()  # fmt: skip
    query = {"calendarId": "primary", "iCalUID": master["iCalUID"]}

    inside = service.events().list(timeMin="2026-05-20T00:00:00Z", **query).execute()["items"]
    after = service.events().list(timeMin="2026-06-01T00:00:00Z", **query).execute()["items"]
    assert [e["id"] for e in inside] == [master["id"]]
    assert after == []


def test_a_recurring_event_needs_its_start_time_zone(service):
    body = {
        "summary": "Hebdo",
        "start": {"dateTime": "2026-11-02T10:00:00+01:00"},
        "end": {"dateTime": "2026-11-02T11:00:00+01:00"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
    }

    with pytest.raises(HttpError) as caught:
        service.events().insert(calendarId="primary", body=body).execute()

    assert caught.value.status_code == 400
    assert "Missing time zone definition for start time." in str(caught.value)


def test_a_single_event_made_without_a_zone_comes_back_without_one(service):
    body = {
        "summary": "Sans fuseau",
        "start": {"dateTime": "2026-11-03T09:00:00Z"},
        "end": {"dateTime": "2026-11-03T10:00:00Z"},
    }

    made = service.events().insert(calendarId="primary", body=body).execute()
    patched = (
        service.events()
        .patch(calendarId="primary", eventId=made["id"], body={"summary": "Renommé"})
        .execute()
    )

    for event in (made, patched):
        assert "timeZone" not in event["start"] and "timeZone" not in event["end"]
        assert datetime.fromisoformat(event["start"]["dateTime"]) == datetime(
            2026, 11, 3, 9, tzinfo=UTC
        )
    service.events().delete(calendarId="primary", eventId=made["id"]).execute()
    zoned = service.events().insert(calendarId="primary", body=timed_event(
        "Avec fuseau", "2026-11-03T09:00:00", "2026-11-03T10:00:00")).execute()  # fmt: skip
    assert zoned["start"]["timeZone"] == "Europe/Paris"
    service.events().delete(calendarId="primary", eventId=zoned["id"]).execute()
