"""Graph's calendarView delta in the sandbox: full rounds, incremental rounds, 410s, volume."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from sandbox.core import Options, Sandbox
from sandbox.store import Event, expand_series, new_graph_id
from tests.sandbox.microsoft.helpers import WORK_2, Graph, event_body, outlook_token, wide_window

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")


@pytest.fixture
def graph(sandbox) -> Graph:
    return Graph(sandbox, outlook_token(sandbox, WORK_2))


@pytest.fixture
def team(sandbox):
    """WORK_2's second calendar: the tests below change it, nothing else looks at it."""
    return next(
        c for c in sandbox.store.account(WORK_2).calendars.values() if c.name == "Équipe projet"
    )


def live_ids(calendar, window: dict[str, str]) -> set[str]:
    start = datetime.fromisoformat(window["startDateTime"])
    end = datetime.fromisoformat(window["endDateTime"])
    return {
        e.id
        for e in calendar.events.values()
        if not e.deleted and e.status != "cancelled" and not e.is_master
        and e.start_utc() < end and e.end_utc() > start
    }  # fmt: skip


def masters_beginning_in(calendar, window: dict[str, str]) -> set[str]:
    """Series masters Graph lists in a first round: those whose series begins in the window."""
    start = datetime.fromisoformat(window["startDateTime"])
    end = datetime.fromisoformat(window["endDateTime"])
    return {
        e.id
        for e in calendar.events.values()
        if not e.deleted and e.is_master and start <= e.start_utc() < end
    }


def full_round(graph: Graph, path: str, window: dict[str, str], page_size: int):
    return graph.follow(path, params=window, headers={"Prefer": f"odata.maxpagesize={page_size}"})


def test_full_round_pages_to_a_delta_link_with_every_event_once(graph, team):
    window = wide_window()

    items, last, pages = full_round(graph, f"/me/calendars/{team.id}/calendarView/delta", window, 4)

    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    assert set(ids) == live_ids(team, window)
    assert pages == max(1, -(-len(ids) // 4))
    assert "@odata.deltaLink" in last and "@odata.nextLink" not in last
    assert "$deltatoken=" in last["@odata.deltaLink"]
    assert "startDateTime" not in last["@odata.deltaLink"]  # parameters live in the token
    assert all(item["@odata.type"] == "#microsoft.graph.event" for item in items)


def test_next_round_reports_creations_updates_and_deletions(sandbox, graph, team):
    path = f"/me/calendars/{team.id}/calendarView/delta"
    kept = graph.create_event(f"/me/calendars/{team.id}/events", subject="À garder")
    doomed = graph.create_event(f"/me/calendars/{team.id}/events", subject="À supprimer")
    _, last, _ = full_round(graph, path, wide_window(), 50)
    delta_link = last["@odata.deltaLink"]

    created = graph.create_event(f"/me/calendars/{team.id}/events", subject="Nouvelle session")
    graph.patch(f"/me/events/{kept['id']}", json={"subject": "Gardé et renommé"})
    graph.delete(f"/me/events/{doomed['id']}")
    items, last, _ = graph.follow(delta_link, headers={"Prefer": "odata.maxpagesize=2"})

    by_id = {item["id"]: item for item in items}
    assert set(by_id) == {created["id"], kept["id"], doomed["id"]}
    assert by_id[created["id"]]["subject"] == "Nouvelle session"
    assert by_id[kept["id"]]["subject"] == "Gardé et renommé"
    assert by_id[doomed["id"]] == {
        "@odata.type": "#microsoft.graph.event",
        "id": doomed["id"],
        "@removed": {"reason": "deleted"},
    }
    # and a round with no change in between is empty
    quiet, _, pages = graph.follow(last["@odata.deltaLink"])
    assert quiet == [] and pages == 1


def test_event_moved_out_of_the_window_comes_as_removed(graph, team):
    start = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0, tzinfo=None)
    window = {
        "startDateTime": (start - timedelta(days=1)).isoformat() + "Z",
        "endDateTime": (start + timedelta(days=1)).isoformat() + "Z",
    }
    event = graph.create_event(f"/me/calendars/{team.id}/events", body=event_body(start=start))
    path = f"/me/calendars/{team.id}/calendarView/delta"
    items, last, _ = full_round(graph, path, window, 100)
    assert event["id"] in {item["id"] for item in items}

    later = start + timedelta(days=30)
    graph.patch(f"/me/events/{event['id']}", json=event_body(start=later))
    items, _, _ = graph.follow(last["@odata.deltaLink"])

    assert {"id": event["id"], "@removed": {"reason": "deleted"}}.items() <= next(
        item for item in items if item["id"] == event["id"]
    ).items()


def test_default_calendar_delta_and_time_zone_preference_carry_over(graph):
    window = wide_window()
    headers = {"Prefer": 'odata.maxpagesize=20, outlook.timezone="Pacific Standard Time"'}

    first = graph.get("/me/calendarView/delta", params=window, headers=headers)

    assert first.status_code == 200
    assert "odata.track-changes" in first.headers["Preference-Applied"]
    assert {i["start"]["timeZone"] for i in first.json()["value"]} == {"Pacific Standard Time"}
    following = graph.get(first.json()["@odata.nextLink"])
    assert {i["start"]["timeZone"] for i in following.json()["value"]} == {"Pacific Standard Time"}


def test_invalidated_delta_link_is_gone(sandbox, graph, team):
    _, last, _ = full_round(
        graph, f"/me/calendars/{team.id}/calendarView/delta", wide_window(), 100
    )

    requests.post(
        f"{sandbox.http_url}/_sandbox/api/accounts/{WORK_2}/invalidate-sync", timeout=5
    ).raise_for_status()
    response = graph.get(last["@odata.deltaLink"])

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "SyncStateNotFound"


def test_unknown_or_foreign_delta_tokens_are_gone(sandbox, graph, team):
    _, last, _ = full_round(
        graph, f"/me/calendars/{team.id}/calendarView/delta", wide_window(), 100
    )
    other_calendar = sandbox.store.account(WORK_2).primary.id

    forged = graph.get(f"/me/calendars/{team.id}/calendarView/delta?$deltatoken=abc.def")
    elsewhere = graph.get(
        last["@odata.deltaLink"].replace(f"/calendars/{team.id}/", f"/calendars/{other_calendar}/")
    )

    assert forged.status_code == elsewhere.status_code == 410


def test_delta_needs_a_window_and_refuses_select(graph):
    missing = graph.get("/me/calendarView/delta")
    selected = graph.get("/me/calendarView/delta", params={**wide_window(), "$select": "subject"})

    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "ErrorInvalidParameter"
    assert selected.status_code == 400


def test_delta_of_ten_thousand_events_in_pages_of_a_thousand(tmp_path):
    big = Sandbox(Options(seed=3, events=10_000, state_dir=tmp_path)).start("127.0.0.1")
    try:
        graph = Graph(big, outlook_token(big, WORK_2))
        calendar = big.store.account(WORK_2).primary
        window = wide_window()
        expected = live_ids(calendar, window)
        assert len(expected) == 10_000
        expected |= masters_beginning_in(calendar, window)

        started = time.perf_counter()
        items, last, pages = full_round(graph, "/me/calendarView/delta", window, 1000)
        elapsed = time.perf_counter() - started

        ids = [item["id"] for item in items]
        assert len(ids) == len(set(ids)) == len(expected)
        assert set(ids) == expected
        assert pages <= 11
        assert "@odata.deltaLink" in last
        print(f"\n10,000 events through delta in {pages} pages of 1000: {elapsed:.2f} s")
    finally:
        big.stop()


# --- recurring series, as Graph really lists them (sandbox/README.md) ------------------------

BARE = {"@odata.type", "@odata.etag", "id", "type", "seriesMasterId", "start", "end"}


@pytest.fixture
def add_series(sandbox, team):
    """Adds a weekly series to `team` (master and occurrences), taken out afterwards."""
    account = sandbox.store.account(WORK_2)
    added: list[str] = []

    def add(begins: datetime, count: int = 4) -> tuple[Event, list[Event]]:
        master = Event(id=new_graph_id(), calendar_id=team.id, ical_uid="serie@test",
                       title="Série", start=begins, end=begins + timedelta(hours=1),
                       location="Salle Hopper", time_zone="Europe/Paris",
                       recurrence=[f"RRULE:FREQ=WEEKLY;COUNT={count}"])  # fmt: skip
        sandbox.store.save(account, team, master)
        occurrences = expand_series(master)
        for occurrence in occurrences:
            occurrence.id = new_graph_id()
            sandbox.store.save(account, team, occurrence)
        added.extend([master.id, *(o.id for o in occurrences)])
        return master, occurrences

    yield add
    with sandbox.store.lock:
        for event_id in [*added, *(e.id for e in team.events.values() if e.series_id in added)]:
            team.events.pop(event_id, None)


def test_occurrences_come_bare_and_their_master_whole_when_the_series_begins_inside(
    graph, team, add_series
):
    master, occurrences = add_series(datetime.now(UTC) + timedelta(days=1))
    path = f"/me/calendars/{team.id}/calendarView/delta"
    items, _, _ = full_round(graph, path, wide_window(), 50)

    by_id = {item["id"]: item for item in items}
    assert by_id[master.id]["type"] == "seriesMaster"
    assert (by_id[master.id]["subject"], by_id[master.id]["location"]["displayName"]) == (
        "Série",
        "Salle Hopper",
    )
    for occurrence in occurrences:
        entry = by_id[occurrence.id]
        assert set(entry) == BARE
        assert (entry["type"], entry["seriesMasterId"]) == ("occurrence", master.id)


def test_a_series_begun_before_the_window_comes_without_its_master(graph, team, add_series):
    master, occurrences = add_series(datetime.now(UTC) - timedelta(weeks=3), count=6)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {
        "startDateTime": today.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endDateTime": (today + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    items, _, _ = full_round(graph, f"/me/calendars/{team.id}/calendarView/delta", window, 50)

    ids = {item["id"] for item in items}
    assert master.id not in ids
    listed = [o for o in occurrences if o.id in ids]
    assert len(listed) >= 2
    assert all(set(next(i for i in items if i["id"] == o.id)) == BARE for o in listed)
    # the master is there to be read
    assert graph.get(f"/me/events/{master.id}").json()["subject"] == "Série"


def test_a_changed_master_comes_whole_in_the_next_round(sandbox, graph, team, add_series):
    master, _occurrences = add_series(datetime.now(UTC) + timedelta(days=2))
    path = f"/me/calendars/{team.id}/calendarView/delta"
    _, last, _ = full_round(graph, path, wide_window(), 50)

    master.title = "Série renommée"
    sandbox.store.save(sandbox.store.account(WORK_2), team, master)
    items, _, _ = graph.follow(last["@odata.deltaLink"])

    assert [(item["id"], item["type"], item["subject"]) for item in items] == [
        (master.id, "seriesMaster", "Série renommée")
    ]


def test_a_deleted_occurrence_leaves_no_trace_but_its_changed_master(graph, team, add_series):
    master, occurrences = add_series(datetime.now(UTC) + timedelta(days=2))
    path = f"/me/calendars/{team.id}/calendarView/delta"
    _, last, _ = full_round(graph, path, wide_window(), 50)

    assert graph.delete(f"/me/events/{occurrences[1].id}").status_code == 204
    items, _, _ = graph.follow(last["@odata.deltaLink"])

    assert [(item["id"], item["type"]) for item in items] == [(master.id, "seriesMaster")]
    instances = graph.get(f"/me/events/{master.id}/instances", params=wide_window()).json()
    assert occurrences[1].id not in {item["id"] for item in instances["value"]}


def test_the_function_call_form_of_delta_is_the_same_listing(graph, team):
    """msgraph-sdk asks for `calendarView/delta()`; Graph answers it like `delta`."""
    plain, _, _ = full_round(
        graph, f"/me/calendars/{team.id}/calendarView/delta", wide_window(), 50
    )
    called, last, _ = full_round(
        graph, f"/me/calendars/{team.id}/calendarView/delta()", wide_window(), 50
    )
    assert {item["id"] for item in called} == {item["id"] for item in plain}
    assert "@odata.deltaLink" in last
