"""Recurring Outlook series as Graph really lists them: occurrences come bare from
calendarView/delta and take their title, place and all-day flag from their series' master
(PROVIDERS.md, "Bare occurrences in delta"; sandbox/README.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from calendars.models import CalendarEvent
from calendars.providers.outlook import api as outlook_api
from calendars.sync import importing
from calendars.sync.importing import calendar_import
from sandbox.store import Event, expand_series, new_graph_id
from tests.calendars.connect_helpers import connect
from tests.sandbox.microsoft.helpers import Graph, outlook_token

pytestmark = pytest.mark.filterwarnings("ignore:response_mode=.form_post.:UserWarning")


@pytest.fixture
def outlook(sandbox_settings, learner):
    """The learner's Outlook primary calendar, and a way to add series to it that are taken
    out again afterwards (the sandbox lives for the whole test session)."""
    integration = connect(sandbox_settings, learner, "outlook")
    calendar = integration.calendars.get(is_primary=True)
    account = sandbox_settings.store.account(integration.account_email)
    remote = account.calendars[calendar.external_id]
    added: list[str] = []

    def add_series(title: str, start: datetime | date, end: datetime | date, count: int,
                   location: str = "") -> Event:  # fmt: skip
        master = Event(id=new_graph_id(), calendar_id=remote.id, ical_uid=f"{title}@test",
                       title=title, start=start, end=end, location=location,
                       time_zone="Europe/Paris",
                       recurrence=[f"RRULE:FREQ=WEEKLY;COUNT={count}"])  # fmt: skip
        sandbox_settings.store.save(account, remote, master)
        added.append(master.id)
        for occurrence in expand_series(master):
            occurrence.id = new_graph_id()
            sandbox_settings.store.save(account, remote, occurrence)
            added.append(occurrence.id)
        return master

    yield calendar, account, remote, add_series
    with sandbox_settings.store.lock:
        for event_id in [*added, *(e.id for e in remote.events.values() if e.series_id in added)]:
            remote.events.pop(event_id, None)


def _stored(calendar, master: Event) -> list[CalendarEvent]:
    return list(CalendarEvent.objects.filter(calendar=calendar, series_id=master.id))


def test_occurrences_take_their_series_title_place_and_all_day_flag(outlook):
    calendar, _account, _remote, add_series = outlook
    monday = timezone.localdate() + timedelta(days=7 - timezone.localdate().weekday())
    start = datetime.combine(monday, datetime.min.time(), timezone.get_current_timezone())
    timed = add_series("Cours d'anglais", start + timedelta(hours=9),
                       start + timedelta(hours=10), 5, location="Salle Turing")  # fmt: skip
    all_day = add_series("Télétravail", monday, monday + timedelta(days=1), 4)

    calendar_import(calendar=calendar)

    lessons = _stored(calendar, timed)
    assert len(lessons) == 5
    assert {(e.title, e.location, e.all_day) for e in lessons} == {
        ("Cours d'anglais", "Salle Turing", False)
    }
    days = _stored(calendar, all_day)
    assert len(days) == 4
    assert all(e.title == "Télétravail" and e.all_day for e in days)
    assert sorted(e.start_date for e in days) == [monday + timedelta(weeks=n) for n in range(4)]
    assert all(e.end_date == e.start_date + timedelta(days=1) for e in days)


def test_a_series_begun_before_the_window_is_read_from_its_master_in_one_batch(
    outlook, sandbox_settings, settings
):
    calendar, _account, _remote, add_series = outlook
    settings.CALENDAR_IMPORT_DAYS_BACK = 14
    begun = timezone.now() - timedelta(weeks=10)
    old = add_series("Point hebdo", begun, begun + timedelta(hours=1), 14, location="Salle 3")
    sandbox_settings.reset_counters()

    calendar_import(calendar=calendar)

    stored = _stored(calendar, old)
    assert len(stored) >= 3  # the weeks of the series inside the window
    assert {(e.title, e.location) for e in stored} == {("Point hebdo", "Salle 3")}
    assert sandbox_settings.count("graph.batch") == 1


def test_a_series_renamed_in_outlook_is_renamed_on_every_date(outlook, sandbox_settings):
    calendar, account, _remote, add_series = outlook
    start = timezone.now() + timedelta(days=2)
    master = add_series("Réunion", start, start + timedelta(minutes=30), 5)
    calendar_import(calendar=calendar)

    graph = Graph(sandbox_settings, outlook_token(sandbox_settings, account.email))
    answer = graph.patch(
        f"/me/events/{master.id}",
        json={"subject": "Réunion d'équipe", "location": {"displayName": "B12"}},
    )
    assert answer.status_code == 200
    result = calendar_import(calendar=calendar)

    assert not result.full
    assert {(e.title, e.location) for e in _stored(calendar, master)} == {
        ("Réunion d'équipe", "B12")
    }
    assert len(_stored(calendar, master)) == 5


def test_an_occurrence_deleted_in_outlook_leaves_the_calendar(outlook, sandbox_settings):
    calendar, account, _remote, add_series = outlook
    start = timezone.now() + timedelta(days=1)
    master = add_series("Yoga", start, start + timedelta(hours=1), 4)
    calendar_import(calendar=calendar)
    second = sorted(_stored(calendar, master), key=lambda e: e.start)[1]

    graph = Graph(sandbox_settings, outlook_token(sandbox_settings, account.email))
    assert graph.delete(f"/me/events/{second.external_id}").status_code == 204
    result = calendar_import(calendar=calendar)

    assert not result.full
    assert second.external_id not in {e.external_id for e in _stored(calendar, master)}
    assert len(_stored(calendar, master)) == 3
    assert result.deleted == 1


def test_a_rescheduled_series_keeps_only_its_new_dates(outlook, sandbox_settings):
    calendar, account, _remote, add_series = outlook
    start = timezone.now().replace(microsecond=0) + timedelta(days=1)
    master = add_series("Tennis", start, start + timedelta(hours=1), 3)
    calendar_import(calendar=calendar)
    old_ids = {e.external_id for e in _stored(calendar, master)}

    later = start + timedelta(hours=3)
    graph = Graph(sandbox_settings, outlook_token(sandbox_settings, account.email))
    answer = graph.patch(f"/me/events/{master.id}", json={
        "start": {"dateTime": later.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                  "timeZone": "UTC"},
        "end": {"dateTime": (later + timedelta(hours=1)).astimezone(UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
    })  # fmt: skip
    assert answer.status_code == 200
    calendar_import(calendar=calendar)

    stored = _stored(calendar, master)
    assert len(stored) == 3
    assert not old_ids & {e.external_id for e in stored}
    assert sorted(e.start for e in stored) == [later + timedelta(weeks=n) for n in range(3)]
    assert {e.title for e in stored} == {"Tennis"}


def test_a_master_that_no_longer_exists_takes_its_occurrences_away(outlook, sandbox_settings):
    calendar, account, remote, add_series = outlook
    start = timezone.now() + timedelta(days=3)
    master = add_series("Atelier", start, start + timedelta(hours=2), 4)
    calendar_import(calendar=calendar)
    assert len(_stored(calendar, master)) == 4

    master.deleted, master.status = True, "cancelled"  # Graph removes the master only
    sandbox_settings.store.save(account, remote, master)
    result = calendar_import(calendar=calendar)

    assert _stored(calendar, master) == []
    assert result.deleted == 4


def test_a_series_spread_over_several_pages_is_read_once(outlook, sandbox_settings, settings,
                                                         monkeypatch):  # fmt: skip
    calendar, _account, remote, add_series = outlook
    settings.CALENDAR_IMPORT_DAYS_BACK = 14
    monkeypatch.setattr(outlook_api, "EVENTS_PAGE_SIZE", 3)
    begun = timezone.now() - timedelta(weeks=6)
    old = add_series("Chorale", begun, begun + timedelta(hours=2), 16)
    sandbox_settings.reset_counters()

    calendar_import(calendar=calendar)

    assert len(_stored(calendar, old)) >= 8
    assert {e.title for e in _stored(calendar, old)} == {"Chorale"}
    # A series is read at most once: those begun before the window (the listing never gives
    # their master), and those whose occurrences come on a page before their master's.
    calendar.refresh_from_db()
    window_start = calendar.window_start
    stored_series = set(CalendarEvent.objects.filter(calendar=calendar).exclude(series_id="")
                        .values_list("series_id", flat=True))  # fmt: skip
    begun_before = {
        series for series in stored_series if remote.events[series].start_utc() < window_start
    }
    assert old.id in begun_before
    assert len(begun_before) <= sandbox_settings.count("graph.events.get") <= len(stored_series)


def test_a_changed_series_keeps_its_occurrences_listed_earlier_in_the_window(
    outlook, sandbox_settings, monkeypatch
):
    """A series read again is read over the window its rows were listed with, not today's:
    an occurrence near that window's start is still Outlook's."""
    calendar, account, _remote, add_series = outlook
    begun = timezone.now() - timedelta(days=31, hours=12)
    master = add_series("Club de lecture", begun, begun + timedelta(hours=1), 3)
    real = importing.import_window
    with monkeypatch.context() as patch:  # listed 3 days ago: its window began 33 days back
        patch.setattr(importing, "import_window",
                      lambda now=None: real(timezone.now() - timedelta(days=3)))  # fmt: skip
        calendar_import(calendar=calendar)
    occurrences = sorted(_stored(calendar, master), key=lambda e: e.start)
    assert len(occurrences) == 3

    graph = Graph(sandbox_settings, outlook_token(sandbox_settings, account.email))
    assert graph.delete(f"/me/events/{occurrences[2].external_id}").status_code == 204
    calendar.refresh_from_db()
    result = calendar_import(calendar=calendar)

    assert not result.full
    assert [e.external_id for e in sorted(_stored(calendar, master), key=lambda e: e.start)] == [
        e.external_id for e in occurrences[:2]
    ]
    assert result.deleted == 1


def test_a_page_that_removes_events_and_reads_a_series_again_counts_both(outlook, sandbox_settings):
    calendar, account, remote, add_series = outlook
    start = timezone.now() + timedelta(days=1)
    master = add_series("Natation", start, start + timedelta(hours=1), 3)
    single = Event(id=new_graph_id(), calendar_id=remote.id, ical_uid="seul@test",
                   title="Seul", start=start, end=start + timedelta(hours=1))  # fmt: skip
    sandbox_settings.store.save(account, remote, single)
    calendar_import(calendar=calendar)
    first = sorted(_stored(calendar, master), key=lambda e: e.start)[0]

    graph = Graph(sandbox_settings, outlook_token(sandbox_settings, account.email))
    assert graph.delete(f"/me/events/{first.external_id}").status_code == 204
    assert graph.delete(f"/me/events/{single.id}").status_code == 204
    result = calendar_import(calendar=calendar)

    assert not CalendarEvent.objects.filter(
        calendar=calendar, external_id__in=[first.external_id, single.id]
    ).exists()
    assert result.deleted == 2
    remote.events.pop(single.id, None)


def test_reads_ask_graph_for_what_is_kept_and_never_for_bodies(
    outlook, sandbox_settings, monkeypatch
):
    """calendarView/delta takes no $select (event-delta page); the calendars listing, the
    series' instances and the masters read in a $batch ask for what the import keeps."""
    from calendars.providers.outlook import series as outlook_series
    from calendars.services.connection import integration_refresh_calendars

    calendar, account, _remote, add_series = outlook
    start = timezone.now() + timedelta(days=2)
    master = add_series("Atelier", start, start + timedelta(hours=1), 3, location="Salle 4")
    calendar_import(calendar=calendar)
    sent: list[str] = []

    def spying(real):
        def spy(token, *args, **kwargs):
            url = next(a for a in args if isinstance(a, str) and ("/" in a))
            sent.append(url)
            sent.extend(inner["url"] for inner in (kwargs.get("json") or {}).get("requests", []))
            return real(token, *args, **kwargs)

        return spy

    monkeypatch.setattr(outlook_api, "graph_get", spying(outlook_api.graph_get))
    monkeypatch.setattr(outlook_api, "graph_request", spying(outlook_api.graph_request))
    monkeypatch.setattr(outlook_series, "graph_request", spying(outlook_series.graph_request))

    graph = Graph(sandbox_settings, outlook_token(sandbox_settings, account.email))
    assert graph.patch(f"/me/events/{master.id}", json={"subject": "Atelier 2"}).ok
    calendar_import(calendar=calendar)
    integration_refresh_calendars(integration=calendar.integration)
    token = outlook_token(sandbox_settings, account.email)
    masters, _gone = outlook_series.read_masters(token, [master.id])

    assert masters[master.id]["subject"] == "Atelier 2"
    assert "body" not in masters[master.id]
    assert {(e.title, e.location) for e in _stored(calendar, master)} == {("Atelier 2", "Salle 4")}
    delta = [u for u in sent if "/calendarView/delta" in u]
    reads = [u for u in sent if "/instances" in u or "/me/calendars?" in u or "/me/events/" in u]
    assert delta and all("$select" not in u for u in delta)
    assert any("/instances" in u for u in reads) and any("/me/calendars?" in u for u in reads)
    assert all("$select=" in u for u in reads)
    assert not [u for u in sent if "$select=" in u and "body" in u.split("$select=")[1]]
