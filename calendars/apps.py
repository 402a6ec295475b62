from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save, pre_save
from django.utils.translation import gettext_lazy as _


class CalendarsConfig(AppConfig):
    name = "calendars"
    verbose_name = _("Calendriers")

    def ready(self) -> None:
        from calendars import signals
        from formations.models import Enrollment, Formation

        for signal in (post_save, post_delete):
            signal.connect(signals.formation_saved_or_deleted, sender=Formation)
            signal.connect(signals.enrollment_saved_or_deleted, sender=Enrollment)
        pre_save.connect(signals.enrollment_saving, sender=Enrollment)
