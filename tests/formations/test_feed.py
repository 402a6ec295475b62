from __future__ import annotations

import importlib.util
import sys
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import icalendar
import pytest
import requests
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils.http import http_date, parse_http_date

from accounts.models import Profile
from formations.feeds import feed_for
from formations.ics import formation_ics_uid
from formations.models import CalendarFeed, Enrollment, Formation
from tests.calendars.providers.caldav.servers import free_port, serving

LONG_AGO = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)


def _feed_url(user) -> str:
    return reverse("formations:feed", args=[feed_for(user=user).token])


def _uids(body: bytes) -> set[str]:
    return {str(event["UID"]) for event in icalendar.Calendar.from_ical(body).events}


def _settle(*learners) -> None:
    """Date everything long ago, so that a change now moves Last-Modified by more than the
    one second an HTTP date can tell apart."""
    for learner in learners:
        feed_for(user=learner)
    Formation.objects.update(updated_at=LONG_AGO)
    Enrollment.objects.update(created_at=LONG_AGO)
    CalendarFeed.objects.update(changed_at=LONG_AGO)


# Access


def test_feed_lists_only_its_learners_formations_without_login(client, learner, make_user,
                                                                make_formation):  # fmt: skip
    other = make_user()
    mine = make_formation(title="La mienne", learners=(learner,))
    theirs = make_formation(title="La sienne", learners=(other,))
    shared = make_formation(title="Commune", learners=(learner, other))

    response = client.get(_feed_url(learner))
    assert response.status_code == 200
    assert _uids(response.content) == {formation_ics_uid(mine), formation_ics_uid(shared)}
    assert len(icalendar.Calendar.from_ical(response.content).events) == 2

    response = client.get(_feed_url(other))
    assert _uids(response.content) == {formation_ics_uid(theirs), formation_ics_uid(shared)}


def test_another_learner_signed_in_still_gets_the_tokens_feed(learner_client, make_user,
                                                               make_formation):  # fmt: skip
    other = make_user()
    theirs = make_formation(learners=(other,))
    response = learner_client.get(_feed_url(other))
    assert _uids(response.content) == {formation_ics_uid(theirs)}


def test_unknown_token_is_404(client, learner, make_formation):
    make_formation(learners=(learner,))
    feed_for(user=learner)
    url = reverse("formations:feed", args=["x" * 43])
    assert client.get(url).status_code == 404


def test_feed_of_a_deactivated_learner_is_404(client, learner):
    url = _feed_url(learner)
    learner.is_active = False
    learner.save()
    assert client.get(url).status_code == 404


def test_feed_refuses_post(client, learner):
    assert client.post(_feed_url(learner)).status_code == 405


# Regenerating the address


def test_regenerate_replaces_the_address_and_the_old_one_stops_working(
    client, learner_client, learner, make_formation
):
    formation = make_formation(learners=(learner,))
    old_url = _feed_url(learner)

    response = learner_client.post(reverse("formations:feed_regenerate"))

    assert response.status_code == 302
    assert response["Location"] == reverse("settings_calendars") + "#calendar-feed"
    [message] = get_messages(response.wsgi_request)
    assert "l'ancienne ne fonctionne plus" in str(message)
    new_url = _feed_url(learner)
    assert new_url != old_url
    assert client.get(old_url).status_code == 404
    assert _uids(client.get(new_url).content) == {formation_ics_uid(formation)}


def test_regenerate_requires_post(learner_client, learner):
    url = _feed_url(learner)
    assert learner_client.get(reverse("formations:feed_regenerate")).status_code == 405
    assert _feed_url(learner) == url


def test_regenerate_requires_login(client, learner):
    url = _feed_url(learner)
    response = client.post(reverse("formations:feed_regenerate"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert _feed_url(learner) == url


def test_regenerate_changes_only_the_signed_in_learners_address(learner_client, make_user):
    other = make_user()
    url = _feed_url(other)
    learner_client.post(reverse("formations:feed_regenerate"))
    assert _feed_url(other) == url


# The calendar


def test_feed_is_a_private_unindexed_calendar(client, learner, make_formation):
    make_formation(learners=(learner,))
    response = client.get(_feed_url(learner))
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Cache-Control"] == "private, max-age=900"
    assert response["X-Robots-Tag"] == "noindex"
    assert response["ETag"].startswith('"')
    assert parse_http_date(response["Last-Modified"])


def test_feed_parses_with_the_calendar_name_and_absolute_links(client, learner, make_formation):
    formation = make_formation(title="Excel <avancé> & macros", learners=(learner,))
    calendar = icalendar.Calendar.from_ical(client.get(_feed_url(learner)).content)
    assert str(calendar["X-WR-CALNAME"]) == "Mes formations"
    [event] = calendar.events
    assert str(event["SUMMARY"]) == "Excel <avancé> & macros"
    assert str(event["URL"]) == f"http://testserver{formation.get_absolute_url()}"


def test_feed_is_named_in_the_learners_language(client, learner):
    Profile.objects.create(user=learner, language="en")
    assert client.get(_feed_url(learner))["Content-Language"] == "en"


def test_cancelled_formation_stays_in_the_feed_as_cancelled(client, learner, make_formation):
    make_formation(learners=(learner,))
    cancelled = make_formation(learners=(learner,), status=Formation.Status.CANCELLED)
    events = icalendar.Calendar.from_ical(client.get(_feed_url(learner)).content).events
    statuses = {str(e["UID"]): str(e["STATUS"]) for e in events}
    assert statuses[formation_ics_uid(cancelled)] == "CANCELLED"
    assert sorted(statuses.values()) == ["CANCELLED", "CONFIRMED"]


def test_same_data_gives_the_same_bytes_and_uids(client, learner, make_formation):
    formations = [make_formation(learners=(learner,)) for _ in range(3)]
    first = client.get(_feed_url(learner))
    second = client.get(_feed_url(learner))
    assert first.content == second.content
    assert first["ETag"] == second["ETag"]
    assert _uids(second.content) == {formation_ics_uid(f) for f in formations}


def test_empty_feed_is_a_valid_calendar(client, learner):
    response = client.get(_feed_url(learner))
    assert response.status_code == 200
    assert icalendar.Calendar.from_ical(response.content).events == []


def test_head_gives_the_headers_without_the_body(client, learner, make_formation):
    make_formation(learners=(learner,))
    get = client.get(_feed_url(learner))
    head = client.head(_feed_url(learner))
    assert head.status_code == 200
    assert head.content == b""
    assert head["ETag"] == get["ETag"]


# Conditional requests


def test_if_none_match_gives_304(client, learner, make_formation):
    make_formation(learners=(learner,))
    url = _feed_url(learner)
    etag = client.get(url)["ETag"]

    response = client.get(url, headers={"if-none-match": etag})

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["Cache-Control"] == "private, max-age=900"
    assert client.get(url, headers={"if-none-match": '"autre"'}).status_code == 200


def test_if_modified_since_gives_304(client, learner, make_formation):
    make_formation(learners=(learner,))
    _settle(learner)
    url = _feed_url(learner)
    last_modified = client.get(url)["Last-Modified"]
    assert last_modified == http_date(LONG_AGO.timestamp())

    assert client.get(url, headers={"if-modified-since": last_modified}).status_code == 304
    earlier = http_date((LONG_AGO - timedelta(seconds=1)).timestamp())
    assert client.get(url, headers={"if-modified-since": earlier}).status_code == 200


def test_moving_a_formation_changes_the_etag_the_date_and_the_body(client, learner,
                                                                    make_formation):  # fmt: skip
    start = datetime(2027, 6, 1, 9, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    formation = make_formation(start=start, learners=(learner,))
    _settle(learner)
    url = _feed_url(learner)
    before = client.get(url)

    formation = Formation.objects.get(pk=formation.pk)
    formation.start += timedelta(days=1)
    formation.end += timedelta(days=1)
    formation.save()
    after = client.get(url, headers={"if-none-match": before["ETag"]})

    assert after.status_code == 200
    assert after["ETag"] != before["ETag"]
    assert after.content != before.content
    assert parse_http_date(after["Last-Modified"]) > parse_http_date(before["Last-Modified"])
    [event] = icalendar.Calendar.from_ical(after.content).events
    assert event.start == start + timedelta(days=1)
    assert event["SEQUENCE"] == 1


def test_unenrollment_changes_the_etag_and_the_date(client, learner, make_formation):
    kept = make_formation(learners=(learner,))
    dropped = make_formation(learners=(learner,))
    _settle(learner)
    url = _feed_url(learner)
    before = client.get(url)

    Enrollment.objects.get(learner=learner, formation=dropped).delete()
    after = client.get(url, headers={"if-modified-since": before["Last-Modified"]})

    assert after.status_code == 200
    assert after["ETag"] != before["ETag"]
    assert parse_http_date(after["Last-Modified"]) > parse_http_date(before["Last-Modified"])
    assert _uids(after.content) == {formation_ics_uid(kept)}


def test_deleting_a_formation_moves_its_learners_feeds(client, learner, make_formation):
    formation = make_formation(learners=(learner,))
    _settle(learner)
    url = _feed_url(learner)
    before = client.get(url)["Last-Modified"]
    formation.delete()
    after = client.get(url, headers={"if-modified-since": before})
    assert after.status_code == 200
    assert _uids(after.content) == set()


def test_enrollment_moved_to_another_learner_moves_both_feeds(client, learner, make_user,
                                                               make_formation):  # fmt: skip
    other = make_user()
    formation = make_formation(learners=(learner,))
    _settle(learner, other)
    dates = {user: client.get(_feed_url(user))["Last-Modified"] for user in (learner, other)}

    enrollment = Enrollment.objects.get(learner=learner, formation=formation)
    enrollment.learner = other
    enrollment.save()

    for user in (learner, other):
        response = client.get(_feed_url(user), headers={"if-modified-since": dates[user]})
        assert response.status_code == 200
    assert _uids(client.get(_feed_url(other)).content) == {formation_ics_uid(formation)}


def test_enrolling_moves_the_date(client, learner, make_formation):
    make_formation(learners=(learner,))
    _settle(learner)
    url = _feed_url(learner)
    before = client.get(url)["Last-Modified"]
    make_formation(learners=(learner,))
    Formation.objects.update(updated_at=LONG_AGO)  # only the enrollment is new
    assert client.get(url, headers={"if-modified-since": before}).status_code == 200


# The settings page


def test_settings_page_shows_the_learners_feed_address(learner_client, learner, make_user):
    other_token = feed_for(user=make_user()).token

    response = learner_client.get(reverse("settings_calendars"))

    assert response.status_code == 200
    token = feed_for(user=learner).token
    url = f"http://testserver/formations/feed/{token}.ics"
    assert "Abonnement à vos formations" in response.text
    assert '<label for="calendar-feed-url">' in response.text
    assert f'id="calendar-feed-url" type="url" value="{url}" readonly' in response.text
    assert f'href="webcal://testserver/formations/feed/{token}.ics"' in response.text
    assert f'action="{reverse("formations:feed_regenerate")}"' in response.text
    assert "csrfmiddlewaretoken" in response.text
    assert other_token not in response.text


def test_settings_page_keeps_the_same_address_across_visits(learner_client, learner):
    learner_client.get(reverse("settings_calendars"))
    token = CalendarFeed.objects.get(user=learner).token
    response = learner_client.get(reverse("settings_calendars"))
    assert token in response.text
    assert CalendarFeed.objects.filter(user=learner).count() == 1


def test_settings_page_does_not_show_formation_titles(learner_client, learner, make_formation):
    # The card shows an address, nothing of the feed's content that would need escaping.
    make_formation(title="<script>alert(1)</script>", learners=(learner,))
    response = learner_client.get(reverse("settings_calendars"))
    assert "<script>alert(1)</script>" not in response.text


# Admin


def test_admin_never_shows_the_token(staff_client, learner):
    feed = feed_for(user=learner)
    pages = [
        reverse("admin:formations_calendarfeed_changelist"),
        reverse("admin:formations_calendarfeed_change", args=[feed.pk]),
        reverse("admin:formations_calendarfeed_delete", args=[feed.pk]),
    ]
    for page in pages:
        response = staff_client.get(page)
        assert response.status_code == 200
        assert feed.token not in response.text


def test_admin_regenerate_action_replaces_the_address(staff_client, client, learner):
    feed = feed_for(user=learner)
    old_url = _feed_url(learner)
    response = staff_client.post(
        reverse("admin:formations_calendarfeed_changelist"),
        {"action": "regenerate", "_selected_action": [feed.pk]},
        follow=True,
    )
    assert "1 adresse remplacée" in response.text
    assert feed_for(user=learner).token not in response.text
    assert client.get(old_url).status_code == 404


# A real CalDAV server


@pytest.fixture
def radicale(tmp_path) -> Iterator[str]:
    """Radicale on a free loopback port, with its own storage, stopped after the test."""
    if importlib.util.find_spec("radicale") is None:
        pytest.fail("Radicale is not installed: install the dev extras (pip install -e '.[dev]').")
    port = free_port()
    args = [
        sys.executable, "-m", "radicale",
        "--config", "",  # no system or user configuration file
        "--server-hosts", f"127.0.0.1:{port}",
        "--auth-type", "none",
        "--storage-filesystem-folder", str(tmp_path / "collections"),
        "--logging-level", "warning",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with serving(args, f"{url}/", tmp_path / "radicale.log"):
        yield url


CALENDAR_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">{time_range}
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""


def _calendar_query(collection: str, time_range: str = "") -> set[str]:
    response = requests.request(
        "REPORT",
        collection,
        data=CALENDAR_QUERY.format(time_range=time_range).encode(),
        headers={"Content-Type": "application/xml; charset=utf-8", "Depth": "1"},
        auth=("learner", "unused"),
        timeout=10,
    )
    assert response.status_code == 207, response.text
    # The loopback server this test started, not untrusted input.
    tree = ElementTree.fromstring(response.content)  # noqa: S314
    data = tree.iter("{urn:ietf:params:xml:ns:caldav}calendar-data")
    return {uid for element in data for uid in _uids(element.text.encode())}


def test_radicale_stores_every_formation_of_the_feed(radicale, client, learner, make_user,
                                                     make_formation):  # fmt: skip
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    montreal = zoneinfo.ZoneInfo("America/Montreal")
    formations = [
        make_formation(title="Excel <avancé> & macros; été", learners=(learner,),
                       start=datetime(2027, 3, 2, 9, tzinfo=paris), location="Lyon, salle 2",
                       description="Ligne 1\nLigne 2, avec virgule"),
        # 9:00 in Montréal after its change to summer time (14 March 2027) is 13:00 UTC.
        make_formation(learners=(learner,), start=datetime(2027, 3, 15, 9, tzinfo=montreal),
                       time_zone="America/Montreal", online_url="https://meet.example.com/x"),
        make_formation(learners=(learner,), start=datetime(2027, 5, 1, 14, tzinfo=paris),
                       status=Formation.Status.CANCELLED),
    ]  # fmt: skip
    make_formation(learners=(make_user(),))
    body = client.get(_feed_url(learner)).content
    expected = {formation_ics_uid(f) for f in formations}
    collection = f"{radicale}/learner/formations/"

    # Radicale takes a whole calendar PUT on a collection path: it validates every component
    # and stores each event (with its time zone) as an item of a new calendar collection.
    upload = requests.put(
        collection,
        data=body,
        headers={"Content-Type": "text/calendar; charset=utf-8"},
        auth=("learner", "unused"),
        timeout=10,
    )
    assert 200 <= upload.status_code < 300, upload.text

    stored = requests.get(collection, auth=("learner", "unused"), timeout=10)
    assert stored.status_code == 200
    assert _uids(stored.content) == expected
    events = {str(e["UID"]): e for e in icalendar.Calendar.from_ical(stored.content).events}
    assert str(events[formation_ics_uid(formations[0])]["SUMMARY"]) == formations[0].title
    assert str(events[formation_ics_uid(formations[2])]["STATUS"]) == "CANCELLED"

    assert _calendar_query(collection) == expected
    # Radicale resolves TZID with the feed's VTIMEZONE: only the Montréal formation, taken at
    # its real UTC time, falls in this hour.
    montreal_hour = '<C:time-range start="20270315T130000Z" end="20270315T140000Z"/>'
    assert _calendar_query(collection, montreal_hour) == {formation_ics_uid(formations[1])}
