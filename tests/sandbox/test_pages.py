from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import requests

from sandbox.pages import calendar_path, event_path
from sandbox.store import GOOGLE, MICROSOFT


def _get(sandbox, path):
    return requests.get(sandbox.http_url + path, timeout=5)


def _post(sandbox, path, data=None):
    return requests.post(sandbox.http_url + path, data=data or {}, timeout=5, allow_redirects=False)


def _account(sandbox, provider=GOOGLE):
    return next(a for a in sandbox.store.accounts.values() if a.provider == provider)


def test_index_lists_every_account_and_calendar(sandbox):
    page = _get(sandbox, "/_sandbox/")
    assert page.status_code == 200
    for account in sandbox.store.accounts.values():
        assert account.email in page.text
        for calendar in account.calendars.values():
            assert calendar_path(account, calendar) in page.text


def test_calendar_page_escapes_titles_from_the_store(sandbox):
    account = _account(sandbox)
    page = _get(sandbox, calendar_path(account, account.primary) + "?q=script")
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text


def test_event_created_on_the_page_is_stored_with_a_new_seq(sandbox):
    account = _account(sandbox, MICROSOFT)
    before = sandbox.store.seq
    response = _post(
        sandbox,
        calendar_path(account, account.primary),
        {"title": "Ajouté à la main", "start": "2027-02-03T10:30", "minutes": "45"},
    )
    assert response.status_code == 303
    event = next(e for e in account.primary.events.values() if e.title == "Ajouté à la main")
    assert event.seq > before
    assert event.start.isoformat() == "2027-02-03T10:30:00+01:00"
    assert (event.end - event.start).total_seconds() == 45 * 60
    assert response.headers["Location"] == event_path(account, account.primary, event)


def test_a_weekly_all_day_series_created_on_the_page(sandbox):
    account = _account(sandbox, MICROSOFT)
    response = _post(
        sandbox,
        calendar_path(account, account.primary),
        {"title": "Télétravail", "start": "2027-03-01T00:00", "all_day": "1", "weeks": "3"},
    )
    assert response.status_code == 303
    series = [e for e in account.primary.events.values() if e.title == "Télétravail"]
    master = next(e for e in series if e.is_master)
    occurrences = sorted((e for e in series if e.series_id == master.id), key=lambda e: e.start)
    assert master.recurrence == ["RRULE:FREQ=WEEKLY;COUNT=3"]
    assert [o.start.isoformat() for o in occurrences] == ["2027-03-01", "2027-03-08", "2027-03-15"]
    assert all(o.all_day and o.end - o.start == timedelta(days=1) for o in occurrences)
    with sandbox.store.lock:
        for event in series:
            del account.primary.events[event.id]


def test_event_moved_and_deleted_on_the_page(sandbox):
    account = _account(sandbox)
    _post(
        sandbox,
        calendar_path(account, account.primary),
        {"title": "À déplacer", "start": "2027-03-01T09:00"},
    )
    event = next(e for e in account.primary.events.values() if e.title == "À déplacer")
    path = event_path(account, account.primary, event)

    assert (
        _post(
            sandbox,
            path,
            {
                "title": "Déplacé",
                "start": "2027-03-02T14:00",
                "minutes": "30",
                "location": "Salle 3",
            },
        ).status_code
        == 303
    )
    assert (event.title, event.location) == ("Déplacé", "Salle 3")
    assert event.start.isoformat() == "2027-03-02T14:00:00+01:00"
    moved_seq = event.seq

    assert _post(sandbox, path + "/delete").status_code == 303
    assert event.deleted and event.status == "cancelled" and event.seq > moved_seq


def test_read_only_calendar_refuses_new_events(sandbox):
    account = _account(sandbox)
    holidays = next(c for c in account.calendars.values() if not c.can_edit)
    response = _post(
        sandbox, calendar_path(account, holidays), {"title": "Non", "start": "2027-03-01T09:00"}
    )
    assert response.status_code == 403
    assert "read-only" in response.text


def test_unknown_calendar_is_an_html_404(sandbox):
    response = _get(sandbox, f"/_sandbox/calendars/{quote('nobody@x.test')}/nothing/")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")


def test_fault_form_adds_a_rule_and_clear_removes_it(sandbox):
    response = _post(
        sandbox,
        "/_sandbox/faults",
        {
            "kind": "rate_limit",
            "endpoint": "google.events.list",
            "account": "*",
            "times": "2",
            "retry_after": "3",
            "delay": "5",
        },
    )
    assert response.status_code == 303
    assert [(f.kind, f.endpoint, f.times, f.retry_after) for f in sandbox.faults] == [
        ("rate_limit", "google.events.list", 2, 3)
    ]
    assert "google.events.list" in _get(sandbox, "/_sandbox/").text
    _post(sandbox, "/_sandbox/faults/clear")
    assert sandbox.faults == []


def test_fault_form_rejects_an_unknown_kind(sandbox):
    assert _post(sandbox, "/_sandbox/faults", {"kind": "meteor"}).status_code == 400


def test_invalidate_sync_action_raises_the_calendars_floor(sandbox):
    account = _account(sandbox)
    before = sandbox.store.seq
    response = _post(sandbox, f"/_sandbox/accounts/{quote(account.email)}/invalidate-sync")
    assert response.status_code == 303
    assert all(c.min_valid_seq > before for c in account.calendars.values())
