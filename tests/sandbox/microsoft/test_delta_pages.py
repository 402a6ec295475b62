"""calendarView/delta's later pages, kept by the sandbox between pages, list what reading the
whole calendar again would: a change between pages is seen as it always was.

Each test has a sandbox of its own, as they change the calendar between a round's pages.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.core import Sandbox
from sandbox.store import Event
from tests.sandbox.microsoft.helpers import WORK_2, Graph, outlook_token, wide_window

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")

PATH = "/me/calendarView/delta"


@pytest.fixture
def graph(own_sandbox: Sandbox) -> Graph:
    return Graph(own_sandbox, outlook_token(own_sandbox, WORK_2))


def page(graph: Graph, url: str, size: int = 3, **params: Any) -> dict[str, Any]:
    response = graph.get(url, params=params, headers={"Prefer": f"odata.maxpagesize={size}"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def rest(graph: Graph, first: dict[str, Any], size: int = 3) -> tuple[list[str], dict[str, Any]]:
    """The ids of the pages after `first`, and the last page."""
    ids: list[str] = []
    body = first
    while "@odata.nextLink" in body:
        body = page(graph, body["@odata.nextLink"], size)
        ids += [item["id"] for item in body["value"]]
    return ids, body


def add(sandbox: Sandbox, event_id: str, days: int = 3) -> Event:
    account = sandbox.store.account(WORK_2)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    event = Event(
        id=event_id,
        calendar_id=account.primary.id,
        ical_uid=f"{event_id}@test",
        title="Ajouté",
        start=start,
        end=start + timedelta(hours=1),
    )
    return sandbox.store.save(account, account.primary, event)


def test_a_full_round_lists_on_its_later_pages_what_the_window_holds_then(own_sandbox, graph):
    """A first round lists the window as it is when each page is asked for: an event created
    after the cursor comes, one deleted does not."""
    account = own_sandbox.store.account(WORK_2)
    calendar = account.primary
    first = page(graph, PATH, **wide_window())
    shown = {item["id"] for item in first["value"]}
    doomed = max(
        (e for e in calendar.events.values() if e.id not in shown and not e.is_occurrence),
        key=lambda e: e.id,
    )
    own_sandbox.store.delete(account, calendar, doomed)
    created = add(own_sandbox, "zzzzAdded")

    ids, _ = rest(graph, first)

    assert created.id in ids
    assert doomed.id not in ids


def test_an_event_taken_out_of_the_store_between_pages_is_not_listed(own_sandbox, graph):
    """Tests take events out of a calendar directly, with no save."""
    calendar = own_sandbox.store.account(WORK_2).primary
    first = page(graph, PATH, **wide_window())
    gone = add(own_sandbox, "zzzzGone")
    assert gone.id in rest(graph, first)[0]
    first = page(graph, PATH, **wide_window())
    with own_sandbox.store.lock:
        calendar.events.pop(gone.id)

    ids, _ = rest(graph, first)

    assert gone.id not in ids


def test_an_event_changed_during_a_round_of_changes_comes_in_the_next_round(own_sandbox, graph):
    account = own_sandbox.store.account(WORK_2)
    _, last = rest(graph, page(graph, PATH, **wide_window()))
    added = [add(own_sandbox, f"zzzzChange{n}") for n in range(4)]
    first = page(graph, last["@odata.deltaLink"], size=1)
    assert [item["id"] for item in first["value"]] == [added[0].id]
    added[2].title = "Changé pendant la série"
    own_sandbox.store.save(account, account.primary, added[2])

    ids, last = rest(graph, first, size=1)

    assert ids == [added[1].id, added[3].id]
    following, _ = rest(graph, {"@odata.nextLink": last["@odata.deltaLink"]})
    assert following == [added[2].id]
