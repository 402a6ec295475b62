"""A learner connects a CalDAV calendar in the browser (Radicale, then Xandikos), sees its events
on the calendar page, and finds their formation in it, read back from the server."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from calendars.models import CalendarIntegration, SyncRun
from calendars.tasks import run_now
from tests.calendars.providers.caldav.test_caldav import single, weekly


def test_learner_connects_a_caldav_calendar_sees_its_events_and_finds_formations_there(
    page, sign_in, make_user, make_formation, dav, own_calendar
):
    soon = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    dav.put(own_calendar, "atelier.ics", single("Atelier poterie", soon.replace(hour=17)))
    dav.put(own_calendar, "serie.ics", weekly())
    demo = make_user("demo", password="demo")
    make_formation(learners=(demo,), title="Formation Python", start=soon.replace(hour=9))
    sign_in(demo, "demo")
    page.goto("/settings/calendars/")

    card = page.locator("#integration-caldav")
    card.get_by_label("Autre serveur (Nextcloud, Zimbra, Synology…)").check()
    card.get_by_label("Adresse du serveur CalDAV").fill(dav.url)
    card.get_by_label("Identifiant").fill(dav.username)
    card.get_by_label("Mot de passe d'application").fill(dav.password)
    card.get_by_role("button", name="Vérifier et connecter").click()

    expect(page).to_have_url(re.compile("/settings/calendars/$"))
    expect(page.locator(".messages")).to_contain_text("est connecté")
    expect(card).to_contain_text(dav.username)
    integration = CalendarIntegration.objects.get(user=demo, provider="caldav")
    assert run_now(integration.pk, SyncRun.Trigger.MANUAL).error == ""

    page.goto(f"/calendar/?view=week&date={soon:%Y-%m-%d}")
    expect(page.get_by_text("Atelier poterie").first).to_be_visible()
    expect(page.get_by_text("Formation Python").first).to_be_visible()
    export = integration.exports.get()
    assert "SUMMARY:Formation Python" in dav.get(own_calendar, export.external_id).text
