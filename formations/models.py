from __future__ import annotations

import secrets
import uuid
import zoneinfo
from datetime import datetime, tzinfo
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import DEFAULT_TIME_ZONE, time_zone_choices


class FormationQuerySet(models.QuerySet["Formation"]):
    def for_learner(self, user: Any) -> FormationQuerySet:
        return self.filter(enrollments__learner=user)

    def upcoming(self, now: datetime | None = None) -> FormationQuerySet:
        return self.filter(end__gte=now or timezone.now()).order_by("start", "pk")

    def past(self, now: datetime | None = None) -> FormationQuerySet:
        return self.filter(end__lt=now or timezone.now()).order_by("-start", "-pk")


class Formation(models.Model):
    """A training session. Dates are stored in UTC; `time_zone` is the zone it takes place in."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Programmée")
        CANCELLED = "cancelled", _("Annulée")

    # Fields whose change a calendar program must see (bumps `sequence`, RFC 5545 3.8.7.4).
    SCHEDULING_FIELDS = ("title", "start", "end", "time_zone", "location", "online_url", "status")

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(_("titre"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    start = models.DateTimeField(_("début"), db_index=True)
    end = models.DateTimeField(_("fin"))
    time_zone = models.CharField(
        _("fuseau horaire"),
        max_length=64,
        choices=time_zone_choices,
        default=DEFAULT_TIME_ZONE,
        help_text=_("Le fuseau du lieu de la formation ; le début et la fin y sont saisis."),
    )
    location = models.CharField(_("lieu"), max_length=255, blank=True)
    online_url = models.URLField(_("lien de la réunion en ligne"), max_length=500, blank=True)
    trainer = models.CharField(_("formateur"), max_length=200, blank=True)
    status = models.CharField(
        _("statut"), max_length=16, choices=Status.choices, default=Status.SCHEDULED
    )
    sequence = models.PositiveIntegerField(
        _("révision"),
        default=0,
        editable=False,
        help_text=_("Augmente à chaque changement d'horaire, de lieu ou de statut."),
    )
    created_at = models.DateTimeField(_("créée le"), auto_now_add=True)
    updated_at = models.DateTimeField(_("modifiée le"), auto_now=True)

    objects = FormationQuerySet.as_manager()

    class Meta:
        ordering = ["start", "pk"]
        verbose_name = _("formation")
        verbose_name_plural = _("formations")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")),
                name="formation_end_after_start",
                violation_error_message=_("La fin doit être postérieure au début."),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args: Any, **kwargs: Any) -> None:
        loaded = getattr(self, "_loaded", None)
        if loaded and any(
            f in loaded and loaded[f] != getattr(self, f) for f in self.SCHEDULING_FIELDS
        ):
            self.sequence += 1
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "sequence"}
        super().save(*args, **kwargs)
        self._loaded = {f.attname: getattr(self, f.attname) for f in self._meta.concrete_fields}

    def get_absolute_url(self) -> str:
        return reverse("formations:detail", args=[self.pk])

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Any, values: Any, *, fetch_mode: Any = None
    ) -> Formation:
        instance = super().from_db(db, field_names, values, fetch_mode=fetch_mode)
        instance._loaded = dict(zip(field_names, values, strict=True))
        return instance

    def clean(self) -> None:
        super().clean()
        if self.start and self.end and self.end <= self.start:
            raise ValidationError({"end": _("La fin doit être postérieure au début.")})

    @property
    def tz(self) -> tzinfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def is_cancelled(self) -> bool:
        return self.status == self.Status.CANCELLED

    @property
    def is_online(self) -> bool:
        return bool(self.online_url)


class Enrollment(models.Model):
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="enrollments",
        verbose_name=_("apprenant"),
    )
    formation = models.ForeignKey(
        Formation,
        on_delete=models.CASCADE,
        related_name="enrollments",
        verbose_name=_("formation"),
    )
    created_at = models.DateTimeField(_("inscrit le"), auto_now_add=True)

    class Meta:
        verbose_name = _("inscription")
        verbose_name_plural = _("inscriptions")
        constraints = [
            models.UniqueConstraint(
                fields=["learner", "formation"], name="enrollment_unique_learner_formation"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.learner} — {self.formation}"


def new_feed_token() -> str:
    return secrets.token_urlsafe(32)


class CalendarFeed(models.Model):
    """A learner's private subscription address (`/formations/feed/<token>.ics`).

    Whoever holds the address reads the learner's formations, as with any calendar program's
    "secret address". The token is kept as is, not as a digest like API tokens, because the
    settings page shows the address again each time; regenerating it is the way to revoke it.
    No get_absolute_url(): the admin would show the address as "View on site".
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="calendar_feed",
        verbose_name=_("apprenant"),
    )
    token = models.CharField(
        _("jeton"), max_length=64, unique=True, default=new_feed_token, editable=False
    )
    created_at = models.DateTimeField(_("créé le"), default=timezone.now, editable=False)
    # Last-Modified is the latest of this and the formations' and enrollments' own dates: a
    # formation leaving the feed leaves no date behind, so its removal is recorded here.
    changed_at = models.DateTimeField(
        _("contenu modifié le"),
        default=timezone.now,
        editable=False,
        help_text=_("La dernière fois qu'une formation a quitté ce calendrier."),
    )

    class Meta:
        verbose_name = _("abonnement calendrier")
        verbose_name_plural = _("abonnements calendrier")

    def __str__(self) -> str:
        # Never the token: this string appears in the admin and in logs.
        return gettext("Abonnement de %(user)s") % {"user": self.user}
