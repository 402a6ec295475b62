"""Formations know nothing of calendars: calendars listen to their changes and, once the
change is committed, send the tasks that bring the exported events in line."""

from __future__ import annotations

from typing import Any

from calendars.tasks import dispatch_propagation
from formations.models import Enrollment, Formation


def formation_saved_or_deleted(sender: Any, instance: Formation, **kwargs: Any) -> None:
    dispatch_propagation(str(instance.uid))


def enrollment_saving(sender: Any, instance: Enrollment, raw: bool = False, **kwargs: Any) -> None:
    """pre_save: what an enrollment edited in place was (the admin lets staff move it to
    another learner or formation), for post_save to carry the move to both calendars."""
    if raw or instance.pk is None:
        return
    instance._calendar_before = (  # type: ignore[attr-defined]
        Enrollment.objects.filter(pk=instance.pk).values_list("learner_id", "formation_id").first()
    )


def enrollment_saved_or_deleted(sender: Any, instance: Enrollment, **kwargs: Any) -> None:
    concerned = {(instance.learner_id, instance.formation_id)}
    if kwargs.get("created") is False:
        before = getattr(instance, "_calendar_before", None)
        if before is None or before == (instance.learner_id, instance.formation_id):
            return  # saved again unchanged: nothing to carry
        concerned.add(before)  # the old learner loses it, the new one gains it
    for learner_id, formation_id in sorted(concerned):
        # A formation being deleted with its enrollments is one change: its own signal and
        # these are sent as one task (dispatch_propagation).
        uid = Formation.objects.filter(pk=formation_id).values_list("uid", flat=True).first()
        if uid is not None:
            dispatch_propagation(str(uid), learner_id)
