from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_delete, pre_save
from django.utils.translation import gettext_lazy as _


class FormationsConfig(AppConfig):
    name = "formations"
    verbose_name = _("Formations")

    def ready(self) -> None:
        from formations import feeds

        # A formation leaving a learner's feed leaves no date behind: the feed records it so
        # that its Last-Modified moves (If-Modified-Since clients would miss it otherwise).
        post_delete.connect(
            feeds.enrollment_deleted,
            sender="formations.Enrollment",
            dispatch_uid="formations.feeds.enrollment_deleted",
        )
        pre_save.connect(
            feeds.enrollment_saving,
            sender="formations.Enrollment",
            dispatch_uid="formations.feeds.enrollment_saving",
        )
