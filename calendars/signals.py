"""Formations know nothing of calendars: calendars listen to their changes and, once the
change is committed, send the tasks that bring the exported events in line."""

from __future__ import annotations

from typing import Any

from calendars.tasks import dispatch_propagation
from formations.models import Enrollment, Formation


def formation_saved_or_deleted(sender: Any, instance: Formation, **kwargs: Any) -> None:
    dispatch_propagation(str(instance.uid))


def enrollment_saved_or_deleted(sender: Any, instance: Enrollment, **kwargs: Any) -> None:
    if kwargs.get("created") is False:  # an enrollment saved again changes nothing
        return
    # When the formation itself is being deleted, its own signal covers every learner.
    uid = Formation.objects.filter(pk=instance.formation_id).values_list("uid", flat=True).first()
    if uid is None:
        return
    dispatch_propagation(str(uid), instance.learner_id)
