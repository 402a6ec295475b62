"""The CalDAV provider against real servers on loopback (Radicale with htpasswd, Xandikos
behind an authenticating proxy): every test runs against both."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest

from calendars.errors import (
    AuthorizationDenied,
    ProviderError,
    RateLimited,
    ReconnectRequired,
    SyncTokenExpired,
    Unauthorized,
)
from calendars.providers import caldav as package
from calendars.providers.caldav import api
from calendars.providers.caldav.auth import check
from calendars.providers.caldav.connection import Account
from calendars.providers.types import (
    EventPage,
    ExportedFormation,
    Outcome,
    RemoteEvent,
    Removed,
    SeriesListed,
    Write,
    WriteKind,
)
from tests.calendars.providers.caldav.servers import DavServer, Fault

provider = package.provider
NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
WINDOW = (NOW - timedelta(days=30), NOW + timedelta(days=60))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def vevent(uid: str, body: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tests//FR\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def single(title: str, start: datetime, hours: int = 1, uid: str = "") -> str:
    end = start + timedelta(hours=hours)
    return vevent(
        uid or str(uuid.uuid4()),
        f"DTSTART:{_stamp(start)}\r\nDTEND:{_stamp(end)}\r\nSUMMARY:{title}\r\n",
    )


def all_day(title: str, day: date) -> str:
    following = day + timedelta(days=1)
    return vevent(
        str(uuid.uuid4()),
        f"DTSTART;VALUE=DATE:{day:%Y%m%d}\r\nDTEND;VALUE=DATE:{following:%Y%m%d}\r\n"
        f"SUMMARY:{title}\r\n",
    )


SERIES_START = (NOW + timedelta(days=1)).replace(hour=8)


def weekly(title: str = "Cours du lundi", count: int = 6, moved_title: str = "Déplacé") -> str:
    """A weekly series of `count`, its third occurrence moved two hours later, its fourth
    cancelled (EXDATE)."""
    uid = "series-" + title.replace(" ", "-")
    third, fourth = (SERIES_START + timedelta(weeks=n) for n in (2, 3))
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tests//FR\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{_stamp(SERIES_START)}\r\nDTEND:{_stamp(SERIES_START + timedelta(hours=1))}\r\n"
        f"RRULE:FREQ=WEEKLY;COUNT={count}\r\nEXDATE:{_stamp(fourth)}\r\nSUMMARY:{title}\r\n"
        f"END:VEVENT\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"RECURRENCE-ID:{_stamp(third)}\r\nDTSTART:{_stamp(third + timedelta(hours=2))}\r\n"
        f"DTEND:{_stamp(third + timedelta(hours=3))}\r\nSUMMARY:{moved_title}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def listing(token: str, calendar: str, sync_token: str = "") -> list[EventPage]:
    pages: list[EventPage] = []
    while True:
        pages.append(
            provider.calendars.list_events(
                token,
                calendar,
                window=WINDOW,
                sync_token=sync_token,
                page=pages[-1].next_page if pages else "",
            )
        )
        if not pages[-1].next_page:
            return pages
        assert len(pages) < 50


def items(pages: list[EventPage]) -> list[object]:
    return [item for page in pages for item in page.items]


def events(pages: list[EventPage]) -> dict[str, RemoteEvent]:
    return {i.external_id: i for i in items(pages) if isinstance(i, RemoteEvent)}


def formation(title: str = "Formation CalDAV", days: int = 3) -> ExportedFormation:
    start = (NOW + timedelta(days=days)).replace(hour=9)
    return ExportedFormation(
        uid=str(uuid.uuid4()),
        title=title,
        description="Page de la formation : https://formations.example.com/f/1/",
        location="Lyon, salle 2",
        url="https://formations.example.com/f/1/",
        start=start,
        end=start + timedelta(hours=3),
        time_zone="Europe/Paris",
    )


def create(calendar: str, written: ExportedFormation, key: int = 0, copy: int = 0) -> Write:
    event_id = provider.calendars.export_event_id(
        owner="7:caldav", calendar_id=calendar, uid=written.uid, copy=copy
    )
    return Write(
        key=key,
        kind=WriteKind.CREATE,
        calendar_id=calendar,
        event_id=event_id,
        body=provider.calendars.event_body(written),
        uid=written.uid,
    )


def update(calendar: str, event_id: str, written: ExportedFormation, key: int = 0) -> Write:
    return Write(
        key=key,
        kind=WriteKind.UPDATE,
        calendar_id=calendar,
        event_id=event_id,
        body=provider.calendars.event_body(written),
        uid=written.uid,
    )


# --- connecting ---------------------------------------------------------------------------


def test_check_finds_the_calendar_home_and_names_the_account(dav: DavServer, grant):
    assert grant.account_email == grant.account_name == dav.username
    # Radicale writes the "@" of the username as %40 in its hrefs.
    assert unquote(grant.credentials["home"]) == dav.url + dav.home
    assert grant.credentials["password"] == dav.password
    assert dav.password not in repr(Account.of(grant.access_token))
    assert provider.oauth.revoke(grant.credentials) is False
    assert provider.push is None


def test_check_finds_the_account_from_the_server_root(dav: DavServer):
    # The address a learner is told to type is often just the server's.
    found = check(dav.url + "/", dav.username, dav.password)

    assert unquote(found.credentials["home"]) == dav.url + dav.home


def test_a_wrong_password_is_refused_and_not_repeated(dav: DavServer):
    with pytest.raises(AuthorizationDenied) as refused:
        check(dav.url, dav.username, "wrong-password-1234")

    assert refused.value.permanent
    assert "wrong-password-1234" not in str(refused.value)


def test_oauth_flows_are_refused(dav: DavServer):
    with pytest.raises(ProviderError) as refused:
        provider.oauth.start(redirect_uri="http://testserver/", state="x")
    assert refused.value.permanent


def test_a_password_withdrawn_after_connecting_asks_for_a_new_one(dav: DavServer, grant, calendar):
    # iCloud withdraws every app-specific password when the Apple Account's password changes.
    withdrawn = {**grant.credentials, "password": "withdrawn-0000"}
    token = provider.oauth.access_token(withdrawn).access_token  # no request: nothing to refresh

    with pytest.raises(Unauthorized) as refused:
        provider.calendars.list_events(token, calendar, window=WINDOW)
    with pytest.raises(ReconnectRequired):
        provider.oauth.access_token(withdrawn, force=True)

    assert "withdrawn-0000" not in str(refused.value)
    assert provider.oauth.access_token(grant.credentials, force=True).access_token


# --- calendars ----------------------------------------------------------------------------


def test_calendars_are_listed_read_only_ones_marked_task_lists_left_out(dav, token, calendar):
    listed = {unquote(c.external_id): c for c in provider.calendars.list_calendars(token)}

    assert listed[calendar].can_edit
    assert listed[calendar].name.startswith("agenda-")
    assert not listed[dav.read_only_calendar].can_edit
    assert dav.tasks_calendar not in listed
    assert sum(c.primary for c in listed.values()) == 1
    assert next(c for c in listed.values() if c.primary).can_edit


# --- listing ------------------------------------------------------------------------------


def test_a_full_listing_expands_series_and_keeps_all_day_events(dav, token, calendar, monkeypatch):
    monkeypatch.setattr(api, "EVENTS_PAGE_SIZE", 2)
    day = (NOW + timedelta(days=5)).date()
    dav.put(calendar, "simple.ics", single("Réunion", NOW + timedelta(days=2)))
    dav.put(calendar, "journee.ics", all_day("Journée", day))
    dav.put(calendar, "serie.ics", weekly())
    dav.put(calendar, "ancien.ics", single("Trop ancien", NOW - timedelta(days=90)))
    dav.put(calendar, "lointain.ics", single("Trop lointain", NOW + timedelta(days=200)))

    pages = listing(token, calendar)

    assert len(pages) == 2  # three resources in the window, two a page
    assert [bool(p.sync_token) for p in pages] == [False, True]
    listed = events(pages)
    assert listed["simple.ics"].title == "Réunion"
    assert listed["simple.ics"].start == NOW + timedelta(days=2)
    whole_day = listed["journee.ics"]
    assert (whole_day.all_day, whole_day.start_date, whole_day.end_date) == (
        True,
        day,
        day + timedelta(days=1),
    )
    series = sorted(
        (e for e in listed.values() if e.series_id == "serie.ics"), key=lambda e: e.start
    )
    assert len(series) == 5  # six, less the cancelled one
    moved = series[2]
    assert moved.title == "Déplacé"
    assert moved.start == SERIES_START + timedelta(weeks=2, hours=2)
    # The moved occurrence keeps the id of its original start.
    assert moved.external_id == f"serie.ics#{_stamp(SERIES_START + timedelta(weeks=2))}"
    assert len({e.change_marker for e in series}) == 1 and series[0].change_marker
    assert "ancien.ics" not in listed and "lointain.ics" not in listed


def _floating(title: str, start: datetime) -> str:
    """An event at a wall-clock time without zone (RFC 5545 3.3.5, form #1)."""
    stamp = "%Y%m%dT%H%M%S"
    return vevent(
        str(uuid.uuid4()),
        f"DTSTART:{start:{stamp}}\r\nDTEND:{start + timedelta(hours=1):{stamp}}\r\n"
        f"SUMMARY:{title}\r\n",
    )


@pytest.mark.parametrize("mode", ["sync-collection", "etags"])
def test_floating_times_are_read_in_the_calendars_zone_else_the_sites(dav, token, mode):
    dav.proxy.hide_sync_token = mode == "etags"
    wall = (NOW + timedelta(days=3)).replace(tzinfo=None, hour=9)
    new_york = dav.make_calendar(f"ny-{uuid.uuid4().hex[:8]}", time_zone="America/New_York")
    plain = dav.make_calendar(f"plain-{uuid.uuid4().hex[:8]}")
    try:
        for calendar in (new_york, plain):
            dav.put(calendar, "neuf.ics", _floating("Neuf heures", wall))

        first = {cal: events(listing(token, cal)) for cal in (new_york, plain)}

        assert first[new_york]["neuf.ics"].start == wall.replace(
            tzinfo=ZoneInfo("America/New_York")
        )
        assert first[plain]["neuf.ics"].start == wall.replace(tzinfo=ZoneInfo("Europe/Paris"))
        # Incremental listings, one after the other, read them in the same zone.
        sync_token = listing(token, new_york)[-1].sync_token
        for hours, name in ((1, "dix.ics"), (2, "onze.ics")):
            dav.put(new_york, name, _floating(name, wall + timedelta(hours=hours)))
            pages = listing(token, new_york, sync_token)
            sync_token = pages[-1].sync_token
            expected = (wall + timedelta(hours=hours)).replace(tzinfo=ZoneInfo("America/New_York"))
            assert events(pages)[name].start == expected
    finally:
        dav.http("DELETE", new_york)
        dav.http("DELETE", plain)


@pytest.mark.parametrize("mode", ["sync-collection", "etags"])
def test_a_full_listing_asks_for_the_windows_index_once_not_at_every_page(
    dav, token, calendar, monkeypatch, mode
):
    monkeypatch.setattr(api, "EVENTS_PAGE_SIZE", 2)
    dav.proxy.hide_sync_token = mode == "etags"
    for number in range(7):
        dav.put(calendar, f"e{number}.ics", single(f"Événement {number}", NOW + timedelta(days=1)))
    dav.proxy.requests.clear()

    pages = listing(token, calendar)

    assert len(pages) == 4 and len(events(pages)) == 7
    reports = [method for method, path in dav.proxy.requests if method == "REPORT"]
    assert len(reports) == 1 + 4  # the window's index, then one multiget a page


@pytest.mark.parametrize("mode", ["sync-collection", "etags"])
def test_an_incremental_listing_gives_what_was_created_changed_or_deleted(
    dav, token, calendar, mode
):
    dav.proxy.hide_sync_token = mode == "etags"
    dav.put(calendar, "garde.ics", single("Inchangé", NOW + timedelta(days=1)))
    dav.put(calendar, "change.ics", single("Avant", NOW + timedelta(days=2), uid="change"))
    dav.put(calendar, "efface.ics", single("Effacé", NOW + timedelta(days=3)))
    first = listing(token, calendar)[-1].sync_token
    # Nothing changed: nothing listed, and the same state again.
    unchanged = listing(token, calendar, first)
    assert items(unchanged) == []

    dav.put(calendar, "change.ics", single("Après", NOW + timedelta(days=2), uid="change"))
    dav.delete(calendar, "efface.ics")
    dav.put(calendar, "nouveau.ics", single("Nouveau", NOW + timedelta(days=4)))
    pages = listing(token, calendar, unchanged[-1].sync_token)

    changes = {getattr(i, "external_id", None): i for i in items(pages)}
    assert set(changes) == {"change.ics", "efface.ics", "nouveau.ics"}
    assert changes["change.ics"].title == "Après"
    assert isinstance(changes["efface.ics"], Removed)
    assert changes["nouveau.ics"].title == "Nouveau"
    assert pages[-1].sync_token not in ("", first)
    assert items(listing(token, calendar, pages[-1].sync_token)) == []


def test_a_changed_series_lists_every_occurrence_it_has_now(dav, token, calendar):
    dav.put(calendar, "serie.ics", weekly(count=6))
    state = listing(token, calendar)[-1].sync_token

    dav.put(calendar, "serie.ics", weekly(count=3, moved_title="Déplacé encore"))
    changed = items(listing(token, calendar, state))

    (listed,) = [i for i in changed if isinstance(i, SeriesListed)]
    occurrences = [i for i in changed if isinstance(i, RemoteEvent)]
    assert listed.series_id == "serie.ics"
    assert listed.ids == {o.external_id for o in occurrences}
    assert len(occurrences) == 3
    assert {o.title for o in occurrences} == {"Cours du lundi", "Déplacé encore"}


def test_a_deleted_series_is_removed_with_its_occurrences(dav, token, calendar):
    dav.put(calendar, "serie.ics", weekly())
    state = listing(token, calendar)[-1].sync_token

    dav.delete(calendar, "serie.ics")

    assert items(listing(token, calendar, state)) == [Removed("serie.ics")]


@pytest.mark.parametrize("mode", ["sync-collection", "etags"])
def test_a_refused_sync_state_raises_sync_token_expired(dav, token, calendar, mode):
    dav.proxy.hide_sync_token = mode == "etags"
    dav.put(calendar, "un.ics", single("Un", NOW + timedelta(days=1)))
    state = listing(token, calendar)[-1].sync_token

    if mode == "etags":  # our own state, damaged
        state = state[:-12]
    else:
        dav.invalidate_sync_tokens()
    with pytest.raises(SyncTokenExpired):
        listing(token, calendar, state)

    # Listing everything again gives a state the server takes (a new token: something changed
    # since the refused ones, which the proxy would refuse again).
    dav.put(calendar, "deux.ics", single("Deux", NOW + timedelta(days=2)))
    fresh = listing(token, calendar)[-1].sync_token
    assert items(listing(token, calendar, fresh)) == []


def test_a_deleted_calendar_is_a_permanent_error(dav, token):
    gone = dav.make_calendar(f"supprime-{uuid.uuid4().hex[:6]}")
    dav.http("DELETE", gone)

    with pytest.raises(ProviderError) as failure:
        provider.calendars.list_events(token, gone, window=WINDOW)

    assert failure.value.permanent and failure.value.status == 404


# --- faults -------------------------------------------------------------------------------


def test_a_503_with_retry_after_is_temporary(dav, token, calendar):
    dav.proxy.faults.append(Fault(status=503, retry_after="120", method="REPORT"))

    with pytest.raises(ProviderError) as failure:
        provider.calendars.list_events(token, calendar, window=WINDOW)

    assert not failure.value.permanent
    assert failure.value.retry_after == 120
    assert isinstance(failure.value, RateLimited)
    # The next try goes through.
    assert listing(token, calendar)[-1].sync_token


def test_a_503_without_retry_after_is_temporary(dav, token, calendar):
    dav.proxy.faults.append(Fault(status=503, method="PROPFIND"))

    with pytest.raises(ProviderError) as failure:
        provider.calendars.list_events(token, calendar, window=WINDOW)

    assert not failure.value.permanent and failure.value.status == 503


def test_a_connection_dropped_in_the_middle_of_a_listing_is_temporary(dav, token, calendar):
    for n in range(3):
        dav.put(calendar, f"e{n}.ics", single(f"Événement {n}", NOW + timedelta(days=n + 1)))
    dav.proxy.faults.append(Fault(method="REPORT", drop=True))

    with pytest.raises(ProviderError) as failure:
        listing(token, calendar)

    assert not failure.value.permanent
    assert len(events(listing(token, calendar))) == 3


# --- writing ------------------------------------------------------------------------------


def test_exports_are_created_updated_and_deleted(dav, token, calendar):
    first, second = formation("Formation 1", 1), formation("Formation 2", 2)

    outcomes, sent = provider.calendars.write_events(
        token, [create(calendar, first, 0), create(calendar, second, 1)]
    )

    assert [(o.key, o.status) for o in outcomes] == [(0, Outcome.OK), (1, Outcome.OK)]
    assert sent >= 2
    ids = [o.event_id for o in outcomes]
    assert all(i.endswith(".ics") for i in ids) and len(set(ids)) == 2
    assert all(o.version for o in outcomes)
    stored = dav.get(calendar, ids[0])
    assert stored.status_code == 200
    assert "X-FORMATION-ID:" + first.uid in stored.text.replace("\r\n ", "")
    listed = events(listing(token, calendar))
    assert listed[ids[0]].formation_marker == first.uid
    assert listed[ids[0]].start == first.start and listed[ids[0]].time_zone == "Europe/Paris"
    assert listed[ids[0]].change_marker == outcomes[0].version

    renamed = dataclasses.replace(first, title="Formation renommée")
    delete = Write(key=1, kind=WriteKind.DELETE, calendar_id=calendar, event_id=ids[1])
    (updated, deleted), _ = provider.calendars.write_events(
        token, [update(calendar, ids[0], renamed), delete]
    )

    assert (updated.status, deleted.status) == (Outcome.OK, Outcome.OK)
    assert updated.version not in ("", outcomes[0].version)
    assert "Formation renommée" in dav.get(calendar, ids[0]).text
    assert dav.get(calendar, ids[1]).status_code == 404


def test_the_same_create_sent_twice_leaves_one_event(dav, token, calendar):
    written = formation()
    (first,), _ = provider.calendars.write_events(token, [create(calendar, written)])

    (again,), _ = provider.calendars.write_events(token, [create(calendar, written)])

    assert (again.status, again.event_id) == (Outcome.EXISTS, first.event_id)
    assert list(events(listing(token, calendar))) == [first.event_id]
    find = Write(key=0, kind=WriteKind.FIND, calendar_id=calendar, uid=written.uid)
    (found,), _ = provider.calendars.write_events(token, [find])
    assert (found.status, found.event_id, found.duplicates) == (Outcome.OK, first.event_id, [])
    find.uid = str(uuid.uuid4())
    (never,), _ = provider.calendars.write_events(token, [find])
    assert never.status == Outcome.MISSING


def test_writing_to_an_event_the_learner_deleted_answers_gone(dav, token, calendar):
    written = formation()
    (created,), _ = provider.calendars.write_events(token, [create(calendar, written)])
    dav.delete(calendar, created.event_id)

    delete = Write(key=0, kind=WriteKind.DELETE, calendar_id=calendar, event_id=created.event_id)
    (deleted,), _ = provider.calendars.write_events(token, [delete])
    (updated,), _ = provider.calendars.write_events(
        token, [update(calendar, created.event_id, written)]
    )

    assert (deleted.status, updated.status) == (Outcome.GONE, Outcome.GONE)
    assert dav.get(calendar, created.event_id).status_code == 404  # not brought back


def test_an_update_on_an_etag_changed_underneath_writes_the_formation_again(dav, token, calendar):
    written = formation()
    (created,), _ = provider.calendars.write_events(token, [create(calendar, written)])
    # The learner edits the event in their calendar application meanwhile.
    edited = dav.get(calendar, created.event_id).text.replace(written.title, "Modifié")
    dav.put(calendar, created.event_id, edited)
    write = dataclasses.replace(
        update(calendar, created.event_id, dataclasses.replace(written, title="Nouveau titre")),
        version=created.version,  # the ETag the export knows
    )

    (outcome,), sent = provider.calendars.write_events(token, [write])

    assert outcome.status == Outcome.OK
    assert sent >= 3  # the refused PUT (412), the ETag read again, the PUT on it
    assert "Nouveau titre" in dav.get(calendar, created.event_id).text
    puts = [r for r in dav.proxy.requests if r[0] == "PUT" and created.event_id in r[1]]
    assert len(puts) >= 3


def test_a_write_to_a_read_only_calendar_fails_for_good(dav, token):
    (outcome,), _ = provider.calendars.write_events(
        token, [create(dav.read_only_calendar, formation())]
    )

    assert outcome.status == Outcome.FAILED
    assert outcome.error.permanent and outcome.error.status == 403


def test_a_503_on_a_write_fails_it_for_a_retry(dav, token, calendar):
    dav.proxy.faults.append(Fault(status=503, retry_after="7", method="PUT"))

    (outcome,), _ = provider.calendars.write_events(token, [create(calendar, formation())])

    assert outcome.status == Outcome.FAILED
    assert not outcome.error.permanent and outcome.error.retry_after == 7


def test_a_wrong_password_on_a_write_raises_unauthorized(dav, grant, calendar):
    token = provider.oauth.access_token({**grant.credentials, "password": "nope-nope"}).access_token

    with pytest.raises(Unauthorized):
        provider.calendars.write_events(token, [create(calendar, formation())])
