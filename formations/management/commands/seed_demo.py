from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from core.demo import DemoCommand
from formations.models import Enrollment, Formation


class Demo(NamedTuple):
    title: str
    days: int  # from today
    at: time  # local start, in `zone`
    hours: int
    trainer: str
    location: str = ""
    online: bool = False
    zone: str = "Europe/Paris"
    enrolled: bool = True
    cancelled: bool = False


DEMO_FORMATIONS = [
    Demo("Accueil et prise en main de la plateforme", -12, time(10), 2, "Sophie Bernard",
         online=True),
    Demo("Gestion de projet agile", 2, time(9), 7, "Claire Martin", "Paris — Salle Lumière"),
    Demo("Excel avancé : tableaux croisés dynamiques", 4, time(14), 3, "Julien Petit", online=True),
    Demo("Management d'équipe à distance", 7, time(9, 30), 6, "Sophie Bernard", "Lyon — Part-Dieu"),
    Demo("Prise de parole en public", 9, time(10), 4, "Nicolas Roux", "Paris — Salle Horizon",
         cancelled=True),
    Demo("Cybersécurité : les bons réflexes", 11, time(9), 2, "Amélie Girard", online=True),
    Demo("Communication interculturelle (Montréal)", 14, time(9), 3, "Marc-André Tremblay",
         online=True, zone="America/Montreal"),
    Demo("RGPD pour les équipes RH", 17, time(13, 30), 4, "Léa Fournier", "Bordeaux — Chartrons",
         enrolled=False),
    Demo("Python pour l'analyse de données", 21, time(9), 7, "Thomas Moreau", online=True),
    Demo("Négociation commerciale", 25, time(9), 7, "Camille Lefèvre", "Nantes — Île de Nantes",
         enrolled=False),
    Demo("Gestion du temps et des priorités", 29, time(14), 3, "Hugo Lambert", online=True),
    Demo("Leadership & intelligence émotionnelle", 35, time(9, 30), 6, "Claire Martin",
         "Paris — Salle Lumière", enrolled=False),
    Demo("Bilan de fin de parcours", 40, time(10), 2, "Sophie Bernard", online=True),
]  # fmt: skip

DESCRIPTION = (
    "Objectifs : acquérir les méthodes essentielles et les appliquer à des cas concrets.\n"
    "Public : tous collaborateurs.\n"
    "Pré-requis : aucun."
)


class Command(DemoCommand):
    help = "Creates the demo learner, the staff user and demo formations, only where absent."

    refusal = "creates users with well-known passwords"

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        learner, learner_created = User.objects.get_or_create(
            username="demo",
            defaults={"first_name": "Camille", "last_name": "Durand", "email": "demo@example.com"},
        )
        if learner_created:
            learner.set_password("demo")
            learner.save(update_fields=["password"])
        admin, admin_created = User.objects.get_or_create(
            username="admin",
            defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True},
        )
        if admin_created:
            admin.set_password("admin")
            admin.save(update_fields=["password"])

        today = timezone.localdate(timezone.now(), zoneinfo.ZoneInfo("Europe/Paris"))
        created = 0
        for demo in DEMO_FORMATIONS:
            zone = zoneinfo.ZoneInfo(demo.zone)
            day = today + timedelta(days=demo.days)
            if day.isoweekday() > 5:  # Saturday or Sunday: the Monday after
                day += timedelta(days=8 - day.isoweekday())
            begins = datetime.combine(day, demo.at, tzinfo=zone)
            formation, was_created = Formation.objects.get_or_create(
                title=demo.title,
                defaults={
                    "description": DESCRIPTION,
                    "start": begins,
                    "end": begins + timedelta(hours=demo.hours),
                    "time_zone": demo.zone,
                    "location": demo.location,
                    "online_url": f"https://meet.example.com/formation-{demo.days}"
                    if demo.online
                    else "",
                    "trainer": demo.trainer,
                    "status": Formation.Status.CANCELLED
                    if demo.cancelled
                    else Formation.Status.SCHEDULED,
                },
            )
            created += was_created
            if demo.enrolled:
                Enrollment.objects.get_or_create(learner=learner, formation=formation)

        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready ({created} formation(s) created, "
                f"{len(DEMO_FORMATIONS) - created} already there)."
            )
        )
