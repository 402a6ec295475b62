"""events.list's later pages, kept by the sandbox between pages, list what reading the whole
calendar again would: a change between pages is seen as it always was.

Each test has a sandbox of its own, as they change calendars between a listing's pages.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from sandbox.core import Sandbox
from sandbox.pages import event_path
from tests.sandbox.google.helpers import (
    ALEX,
    CAMILLE,
    calendar_service,
    google_credentials,
    timed_event,
)

HOLIDAYS = "fr.french#holiday@group.v.calendar.google.test"


@pytest.fixture
def service(own_sandbox: Sandbox) -> Any:
    return calendar_service(own_sandbox, google_credentials(own_sandbox, CAMILLE))


def rest(service: Any, first: dict[str, Any], **params: Any) -> tuple[list[str], dict[str, Any]]:
    """The ids of the pages after `first`, and the last page."""
    ids: list[str] = []
    page = first
    while "nextPageToken" in page:
        page = service.events().list(pageToken=page["nextPageToken"], **params).execute()
        ids += [item["id"] for item in page.get("items", [])]
    return ids, page


def days(count: int, hour: int = 10) -> str:
    moment = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return (moment + timedelta(days=count)).isoformat()


def test_an_event_changed_between_pages_comes_with_the_sync_token_not_the_later_pages(service):
    params = {"calendarId": "primary", "maxResults": 3}
    first = service.events().list(**params).execute()
    seen = {item["id"] for item in first["items"]}
    whole = [item["id"] for item in service.events().list(calendarId="primary").execute()["items"]]
    later = [event_id for event_id in whole if event_id not in seen][-1]
    service.events().patch(calendarId="primary", eventId=later, body={"summary": "Moved"}).execute()

    ids, last = rest(service, first, **params)

    assert later not in ids
    assert set(whole) - seen - {later} == set(ids)
    changes = service.events().list(calendarId="primary", syncToken=last["nextSyncToken"]).execute()
    assert [(item["id"], item["summary"]) for item in changes["items"]] == [(later, "Moved")]


def test_an_event_edited_in_place_between_pages_is_not_listed_on_the_later_pages(
    own_sandbox, service
):
    """The sandbox's own page changes the stored event itself, not a copy of it."""
    params = {"calendarId": "primary", "maxResults": 3}
    first = service.events().list(**params).execute()
    account = own_sandbox.store.account(CAMILLE)
    calendar = account.primary
    seen = {item["id"] for item in first["items"]}
    event = max(
        (e for e in calendar.events.values() if e.id not in seen and e.series_id == ""),
        key=lambda e: e.id,
    )
    answer = requests.post(
        own_sandbox.http_url + event_path(account, calendar, event) + "/invitation",
        data={"organizer": "", "free": "1"},
        timeout=5,
        allow_redirects=False,
    )
    assert answer.status_code == 303

    ids, _ = rest(service, first, **params)

    assert event.id not in ids


def test_an_event_deleted_or_created_between_pages_is_not_listed_on_the_later_pages(service):
    params = {"calendarId": "primary", "maxResults": 3, "singleEvents": True}
    first = service.events().list(**params).execute()
    seen = {item["id"] for item in first["items"]}
    whole = service.events().list(calendarId="primary", singleEvents=True).execute()["items"]
    doomed = [item["id"] for item in whole if item["id"] not in seen][-1]
    service.events().delete(calendarId="primary", eventId=doomed).execute()
    created = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event("Nouveau", days(3), days(3, 11), id="vvvvvvvvadded1"),
        )
        .execute()
    )

    ids, last = rest(service, first, **params)

    assert doomed not in ids
    assert created["id"] not in ids
    assert {item["id"] for item in whole} - seen - {doomed} == set(ids)
    changes = service.events().list(calendarId="primary", syncToken=last["nextSyncToken"]).execute()
    assert {item["id"] for item in changes["items"]} == {doomed, created["id"]}


def _weekly_series(service: Any, event_id: str, day: int) -> tuple[dict, dict]:
    """A weekly series of 3 in the primary calendar, from `day` days ahead: its master and
    its instances."""
    master = (
        service.events()
        .insert(
            calendarId="primary",
            body=timed_event("Hebdo", days(day), days(day, 11), id=event_id,
                             recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"]),
        )
        .execute()
    )  # fmt: skip
    occurrences = service.events().instances(calendarId="primary", eventId=master["id"]).execute()
    return master, occurrences


def test_a_series_deleted_between_pages_takes_its_exception_out_of_the_later_pages(service):
    master, occurrences = _weekly_series(service, "vvvvvvseries1", 2)
    moved = occurrences["items"][1]["id"]
    service.events().patch(
        calendarId="primary", eventId=moved, body={"summary": "Déplacé"}
    ).execute()
    params = {"calendarId": "primary", "maxResults": 3}
    first = service.events().list(**params).execute()
    assert moved not in {item["id"] for item in first["items"]}
    service.events().delete(calendarId="primary", eventId=master["id"]).execute()

    ids, _ = rest(service, first, **params)

    assert master["id"] not in ids
    assert moved not in ids


def test_an_exception_comes_back_on_a_later_page_when_its_series_is_restored_between_pages(
    service,
):
    """A cancelled exception shows beside its master: its series deleted when the listing
    began, restored before the later pages, it is listed on them, as the calendar then says."""
    master, occurrences = _weekly_series(service, "vvvvvvseries2", 2)
    cancelled = occurrences["items"][1]["id"]
    service.events().delete(calendarId="primary", eventId=cancelled).execute()
    service.events().delete(calendarId="primary", eventId=master["id"]).execute()
    params = {"calendarId": "primary", "maxResults": 3}
    first = service.events().list(**params).execute()
    service.events().patch(
        calendarId="primary", eventId=master["id"], body={"status": "confirmed"}
    ).execute()

    ids, _ = rest(service, first, **params)

    assert cancelled in ids
    assert master["id"] not in ids  # restored after the listing began: the sync token's


def test_a_series_moved_into_the_window_between_pages_lists_its_master_on_the_later_pages(
    service,
):
    master, occurrences = _weekly_series(service, "vvvvvvseries3", 120)
    params = {"calendarId": "primary", "maxResults": 2, "timeMin": days(0), "timeMax": days(90)}
    first = service.events().list(**params).execute()
    service.events().patch(
        calendarId="primary",
        eventId=occurrences["items"][0]["id"],
        body={"start": {"dateTime": days(30)}, "end": {"dateTime": days(30, 11)}},
    ).execute()

    ids, _ = rest(service, first, **params)

    assert master["id"] in ids
    again = service.events().list(**{**params, "maxResults": 2500}).execute()
    assert master["id"] in {item["id"] for item in again["items"]}


def test_a_later_page_says_when_the_calendar_last_changed(own_sandbox, service):
    old = datetime(2020, 1, 1, tzinfo=UTC)
    for event in own_sandbox.store.account(CAMILLE).primary.events.values():
        event.updated = old
    params = {"calendarId": "primary", "maxResults": 3}
    first = service.events().list(**params).execute()
    assert first["updated"] == "2020-01-01T00:00:00.000Z"
    patched = (
        service.events()
        .patch(calendarId="primary", eventId=first["items"][0]["id"], body={"summary": "Changé"})
        .execute()
    )

    _, last = rest(service, first, **params)

    assert last["updated"] == patched["updated"]


def test_accounts_sharing_a_calendar_id_each_list_their_own_entries(own_sandbox, service):
    """The holiday calendars of two accounts have the same id."""
    alex = calendar_service(own_sandbox, google_credentials(own_sandbox, ALEX))
    listed = {}
    for email, client in ((CAMILLE, service), (ALEX, alex)):
        first = client.events().list(calendarId=HOLIDAYS, maxResults=3).execute()
        ids, _ = rest(client, first, calendarId=HOLIDAYS, maxResults=3)
        listed[email] = [item["id"] for item in first["items"]] + ids
    for email, ids in listed.items():
        stored = own_sandbox.store.account(email).calendars[HOLIDAYS].events
        assert sorted(ids) == sorted(stored)


def test_a_page_token_of_another_query_is_refused(service):
    first = service.events().list(calendarId="primary", maxResults=3).execute()
    other = {"calendarId": "primary", "maxResults": 3, "singleEvents": True}

    with pytest.raises(HttpError) as caught:
        service.events().list(pageToken=first["nextPageToken"], **other).execute()

    assert caught.value.resp.status == 400
    assert caught.value.error_details[0]["reason"] == "invalidParameter"


def test_a_later_page_no_longer_counts_an_event_taken_out_of_the_store(own_sandbox, service):
    """Tests take events out of a calendar directly, with no save."""
    calendar = own_sandbox.store.account(CAMILLE).primary
    for event in calendar.events.values():
        event.updated = datetime(2020, 1, 1, tzinfo=UTC)
    newest = (
        service.events()
        .insert(calendarId="primary", body=timed_event("Récent", days(3), days(3, 11)))
        .execute()
    )
    params = {"calendarId": "primary", "maxResults": 3}
    first = service.events().list(**params).execute()
    assert first["updated"] == newest["updated"]
    with own_sandbox.store.lock:
        calendar.events.pop(newest["id"])

    _, last = rest(service, first, **params)

    assert last["updated"] == "2020-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    "kept",
    [
        ["id", "created", "updated", "htmlLink", "originalStartTime", "hangoutLink"],
        ["id", "conferenceData", "recurringEventId"],
        ["id", "summary"],
    ],
)
def test_a_partial_response_lists_the_fields_of_the_whole_listing(own_sandbox, service, kept):
    account = own_sandbox.store.account(CAMILLE)
    for event, url in zip(
        [e for e in account.primary.events.values() if not e.deleted and not e.series_id][:2],
        ["https://meet.sandbox.test/abc-defg-hij", "https://visio.sandbox.test/42"],
        strict=True,
    ):
        event.online_url = url
        own_sandbox.store.save(account, account.primary, event)
    service.events().insert(
        calendarId="primary",
        body=timed_event("Hebdo", days(2), days(2, 11), recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"]),
    ).execute()
    whole = service.events().list(calendarId="primary", singleEvents=True).execute()["items"]

    partial = (
        service.events()
        .list(calendarId="primary", singleEvents=True, fields=f"items({','.join(kept)})")
        .execute()
    )

    assert all(any(name in item for item in whole) for name in kept)
    assert partial["items"] == [{k: v for k, v in item.items() if k in kept} for item in whole]


@pytest.mark.parametrize("fields", ["items,nextSyncToken", "items(*),nextSyncToken", "*"])
def test_a_partial_response_of_whole_items_lists_them_whole(service, fields):
    whole = service.events().list(calendarId="primary", singleEvents=True).execute()

    partial = (
        service.events().list(calendarId="primary", singleEvents=True, fields=fields).execute()
    )

    assert partial["items"] == whole["items"]
