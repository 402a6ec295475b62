"""`seed_demo_calendar`: the demo learner's calendar, imported already, with an event over one
of their formations, so that `make run` shows a conflict without anyone connecting anything."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from calendars import tasks
from calendars.availability import formation_availability, learner_conflicts
from calendars.models import CalendarEvent, CalendarIntegration, SyncRun
from formations.models import Formation
from tests.calendars.availability_helpers import connected


@pytest.fixture
def demo(db, settings):
    settings.DEBUG = True
    call_command("seed_demo")
    return get_user_model().objects.get(username="demo")


def _state():
    integrations = CalendarIntegration.objects.values_list("user__username", "account_email")
    events = CalendarEvent.objects.values_list("external_id", "title", "start", "end")
    return sorted(integrations), sorted(events)


def test_the_demo_learner_has_a_conflict_on_their_pages_and_in_the_admin(demo, client):
    call_command("seed_demo_calendar")

    integration = CalendarIntegration.objects.get(user=demo)
    assert integration.account_email == "camille.durand@gmail.test"
    assert not integration.export_enabled and not integration.sync_enabled
    formations = list(Formation.objects.for_learner(demo).upcoming())
    conflicts = learner_conflicts(user=demo, formations=formations)
    assert len(conflicts) == 1
    (formation_id, found), = conflicts.items()  # fmt: skip
    assert [c.title for c in found] == ["Rendez-vous chez le dentiste"]
    formation = Formation.objects.get(pk=formation_id)
    assert formation == next(f for f in formations if f.status == Formation.Status.SCHEDULED)
    assert [learner.name for learner in formation_availability(formation=formation).busy] == [
        "Camille Durand"
    ]
    assert CalendarEvent.objects.filter(calendar__integration=integration).count() >= 5

    client.force_login(demo)
    day = found[0].start.astimezone(formation.tz).date()
    page = client.get(reverse("calendars:calendar"), {"view": "day", "date": day.isoformat()})
    assert page.status_code == 200
    assert "Rendez-vous chez le dentiste" in page.text
    assert formation.title in page.text
    assert 'class="badge badge-conflict"' in client.get(reverse("formations:list")).text
    detail = client.get(formation.get_absolute_url()).text
    assert "has-conflict" in detail and "Rendez-vous chez le dentiste" in detail


def test_it_is_idempotent(demo):
    call_command("seed_demo_calendar")
    first = _state()
    call_command("seed_demo_calendar")
    assert _state() == first


def test_a_calendar_connected_already_is_left_alone(demo):
    connected(demo)
    before = _state()
    call_command("seed_demo_calendar")
    assert _state() == before


def test_syncing_it_by_hand_asks_to_reconnect_without_calling_anyone(demo):
    """No tokens: a sync asked for finds no grant, and the learner is asked to reconnect (to
    the sandbox's account of the same learner); no provider is called."""
    call_command("seed_demo_calendar")
    integration = CalendarIntegration.objects.get(user=demo)

    tasks.run_now(integration.pk, SyncRun.Trigger.MANUAL)

    integration.refresh_from_db()
    assert integration.status == CalendarIntegration.Status.NEEDS_RECONNECT
    assert CalendarEvent.objects.filter(calendar__integration=integration).exists()


def test_it_refuses_with_debug_off(demo, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_demo_calendar")
    assert not CalendarIntegration.objects.exists()
    call_command("seed_demo_calendar", force=True)
    assert CalendarIntegration.objects.filter(user=demo).exists()


def test_it_needs_the_demo_learner(db, settings):
    settings.DEBUG = True
    with pytest.raises(CommandError, match="seed_demo first"):
        call_command("seed_demo_calendar")
