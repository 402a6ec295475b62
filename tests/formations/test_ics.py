from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import icalendar
import pytest

from formations.ics import build_ics, formation_ics_uid
from formations.models import Formation


def _parse(body: bytes) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(body)


def _url(formation: Formation) -> str:
    return f"https://formations.example.com{formation.get_absolute_url()}"


@pytest.fixture
def montreal_formation(make_formation):
    # 9:00 in Montréal on 2 March 2027 (EST, UTC-5) is 14:00 UTC.
    start = datetime(2027, 3, 2, 9, tzinfo=zoneinfo.ZoneInfo("America/Montreal"))
    return make_formation(
        title="Atelier <b>interculturel</b> — été",
        start=start,
        hours=3,
        time_zone="America/Montreal",
        location="Montréal, Salle 2",
        online_url="https://meet.example.com/abc",
        description="Ligne 1\nLigne 2",
    )


def test_event_times_are_right_in_utc(montreal_formation):
    event = _parse(build_ics([montreal_formation], absolute_url=_url)).events[0]
    assert event.start.astimezone(UTC) == datetime(2027, 3, 2, 14, tzinfo=UTC)
    assert event.end.astimezone(UTC) == datetime(2027, 3, 2, 17, tzinfo=UTC)


def test_event_uses_the_formation_time_zone_with_its_definition(montreal_formation):
    calendar = _parse(build_ics([montreal_formation], absolute_url=_url))
    event = calendar.events[0]
    assert event["DTSTART"].params["TZID"] == "America/Montreal"
    assert event.start.replace(tzinfo=None) == datetime(2027, 3, 2, 9)
    assert [tz["TZID"] for tz in calendar.timezones] == ["America/Montreal"]


def test_event_carries_the_formation_details(montreal_formation):
    event = _parse(build_ics([montreal_formation], absolute_url=_url)).events[0]
    assert str(event["SUMMARY"]) == "Atelier <b>interculturel</b> — été"
    assert str(event["LOCATION"]) == "Montréal, Salle 2"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["URL"]) == _url(montreal_formation)
    assert str(event["DESCRIPTION"]).endswith(_url(montreal_formation))
    assert "Ligne 1\nLigne 2" in str(event["DESCRIPTION"])


def test_uid_is_stable_across_exports_and_edits(montreal_formation):
    first = _parse(build_ics([montreal_formation], absolute_url=_url)).events[0]["UID"]
    montreal_formation.title = "Nouveau titre"
    montreal_formation.save()
    second = _parse(build_ics([montreal_formation], absolute_url=_url)).events[0]["UID"]
    assert first == second == formation_ics_uid(montreal_formation)


def test_cancelled_formation_is_status_cancelled_with_higher_sequence(montreal_formation):
    formation = Formation.objects.get(pk=montreal_formation.pk)
    formation.status = Formation.Status.CANCELLED
    formation.save()
    event = _parse(build_ics([formation], absolute_url=_url)).events[0]
    assert str(event["STATUS"]) == "CANCELLED"
    assert event["SEQUENCE"] == 1


def test_output_is_valid_rfc5545_lines(montreal_formation):
    body = build_ics([montreal_formation], absolute_url=_url)
    lines = body.split(b"\r\n")
    assert lines[0] == b"BEGIN:VCALENDAR"
    assert b"VERSION:2.0" in lines
    assert b"METHOD:PUBLISH" in lines
    assert all(len(line) <= 75 for line in lines)


def test_same_formations_give_the_same_file(montreal_formation):
    now = datetime(2026, 11, 1, tzinfo=UTC)
    first = build_ics([montreal_formation], absolute_url=_url, now=now)
    assert build_ics([montreal_formation], absolute_url=_url, now=now) == first


def test_time_zone_definition_covers_the_change_to_summer_time(make_formation):
    # Montréal moves to EDT (UTC-4) on 14 March 2027: 9:00 local on the 15th is 13:00 UTC.
    start = datetime(2027, 3, 15, 9, tzinfo=zoneinfo.ZoneInfo("America/Montreal"))
    formation = make_formation(start=start, time_zone="America/Montreal")
    calendar = _parse(build_ics([formation], absolute_url=_url))
    assert calendar.events[0].start.astimezone(UTC) == datetime(2027, 3, 15, 13, tzinfo=UTC)
    offsets = {sub["TZOFFSETTO"].to_ical() for sub in calendar.timezones[0].subcomponents}
    assert offsets == {"-0500", "-0400"}


def test_empty_calendar_is_valid(db):
    calendar = _parse(build_ics([], absolute_url=_url))
    assert calendar.events == []
