from __future__ import annotations

import zoneinfo
from datetime import datetime

import icalendar
from playwright.sync_api import Page, expect


def test_ics_download_is_the_formation_as_icalendar(page: Page, sign_in, make_user, make_formation):
    lea = make_user("lea")
    # 9:00–12:30 in Montréal: the file keeps the formation's own time zone.
    start = datetime(2030, 3, 12, 9, tzinfo=zoneinfo.ZoneInfo("America/Montreal"))
    formation = make_formation(
        title="Atelier interculturel",
        start=start,
        hours=3.5,
        time_zone="America/Montreal",
        location="Montréal, salle 2",
        learners=(lea,),
    )
    sign_in(lea)
    page.get_by_role("link", name=formation.title).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(formation.title)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Télécharger (.ics)").click()
    download = download_info.value

    assert download.suggested_filename == f"formation-{formation.pk}.ics"
    calendar = icalendar.Calendar.from_ical(download.path().read_bytes())
    [event] = calendar.events
    assert str(event["UID"]) == f"formation-{formation.uid}"
    assert str(event["SUMMARY"]) == formation.title
    assert event.start == formation.start
    assert event.end == formation.end
    assert event["DTSTART"].params["TZID"] == "America/Montreal"
    assert event.start.hour == 9
