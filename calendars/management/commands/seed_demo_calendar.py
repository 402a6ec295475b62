from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from calendars.models import Calendar, CalendarEvent, CalendarIntegration
from core.demo import DemoCommand
from formations.models import Formation

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
# The sandbox's account of the same learner: reconnecting to it makes the integration real.
ACCOUNT = "camille.durand@gmail.test"


class Entry(NamedTuple):
    title: str
    days: int  # from today
    at: time
    minutes: int
    location: str = ""


# Around the demo formations, never over one of them (but the first).
ENTRIES = [
    Entry("Point d'équipe hebdomadaire", 1, time(9, 30), 30, "Salle 2"),
    Entry("Déjeuner avec Julie", 1, time(12, 30), 60, "Café des Arts"),
    Entry("Appel client — Dupont & fils", 3, time(16, 30), 45),
    Entry("Séance de sport", 5, time(18, 30), 60, "Gymnase municipal"),
    Entry("Revue de projet", 8, time(14), 90, "Salle 4"),
    Entry("Entretien annuel", 10, time(11), 60),
    Entry("Atelier RH", 13, time(15), 60),
]
# Over the learner's first upcoming formation: the conflict the demo shows.
CLASH = Entry("Rendez-vous chez le dentiste", 0, time(0), 75, "Cabinet dentaire Pasteur")


class Command(DemoCommand):
    help = (
        "Gives the demo learner a Google calendar already imported, with a few events, one "
        "of them over an upcoming formation of theirs: the conflict shows on their pages and "
        "in the admin at once. Only where the learner has no calendar connected; refuses with "
        "DEBUG off unless --force. Run after seed_demo."
    )

    refusal = "writes made-up calendar data"

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        learner = get_user_model().objects.filter(username="demo").first()
        if learner is None:
            raise CommandError("No demo learner: run seed_demo first.")
        if CalendarIntegration.objects.filter(user=learner).exists():
            self.stdout.write("The demo learner has a calendar connected already: left as it is.")
            return
        now = timezone.now()
        # No tokens: the periodic sync leaves it alone (sync_enabled off), nothing is written
        # to it (export_enabled off), and a sync asked for by hand finds no grant and asks the
        # learner to reconnect, to the sandbox's account of the same name.
        integration = CalendarIntegration.objects.create(
            user=learner,
            provider="google",
            account_email=ACCOUNT,
            account_name=learner.get_full_name(),
            credentials="",
            export_enabled=False,
            sync_enabled=False,
            last_synced_at=now,
        )
        calendar = Calendar.objects.create(
            integration=integration,
            external_id=ACCOUNT,
            name=learner.get_full_name() or ACCOUNT,
            time_zone="Europe/Paris",
            is_primary=True,
            import_enabled=True,
            last_imported_at=now,
        )
        formations = list(
            Formation.objects.for_learner(learner)
            .filter(status=Formation.Status.SCHEDULED)
            .upcoming(now)
        )
        today = timezone.localdate(now, PARIS)
        events = []
        for n, entry in enumerate(ENTRIES):
            start = datetime.combine(today + timedelta(days=entry.days), entry.at, tzinfo=PARIS)
            end = start + timedelta(minutes=entry.minutes)
            if not any(start < f.end and end > f.start for f in formations):
                events.append(_event(calendar, n, entry, start, end))
        clash = next((f for f in formations if f.start > now), None)
        if clash is not None:
            start = clash.start + min(timedelta(hours=1), (clash.end - clash.start) / 2)
            end = start + timedelta(minutes=CLASH.minutes)
            events.append(_event(calendar, len(ENTRIES), CLASH, start, end))
        CalendarEvent.objects.bulk_create(events)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo calendar ready: {len(events)} events"
                + (f", one over « {clash.title} »." if clash else ".")
            )
        )


def _event(calendar: Calendar, n: int, entry: Entry, start: datetime, end: datetime) -> Any:
    return CalendarEvent(
        calendar=calendar,
        external_id=f"demo-{n}",
        title=entry.title,
        location=entry.location,
        start=start,
        end=end,
        time_zone="Europe/Paris",
    )
