"""The formations' admin, plus what their learners' calendars tell staff: how many learners are
busy at a formation's time (its page and the list), a warning before a move that would make
some of them busy, and free slots to move it to. Names and counts only: never an event's
title, place or details (calendars.availability gives nothing else).

The formations app knows nothing of calendars (an import-linter contract), so this module
replaces its registration with a subclass of its FormationAdmin. Importing formations.admin
registers it first, whatever the order in which the admin loads the apps' modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from calendars.availability import (
    WORK_HOURS,
    Availability,
    Slot,
    formation_availability,
    formations_busy_counts,
    free_slots,
)
from formations.admin import FormationAdmin, FormationAdminForm
from formations.models import Formation

# The box ticked to save a move that makes learners busy; its value names the times it is for.
CONFIRM = "confirm_clash"
SLOT_WEEKS = 4  # the free slots looked for by default: the next four weeks
SLOT_RANGE_MAX_DAYS = 92


# --- what staff read ---------------------------------------------------------------------------


def _unknown(count: int) -> str:
    return ngettext(
        "%(count)d inconnu (agenda non connecté ou partage désactivé)",
        "%(count)d inconnus (agenda non connecté ou partage désactivé)",
        count,
    ) % {"count": count}


def availability_summary(availability: Availability) -> str:
    """ "3 apprenants occupés sur 12 ; 7 libres ; 2 inconnus (...)"."""
    busy, total = len(availability.busy), availability.known + availability.unknown
    return " ; ".join([
        ngettext(
            "%(busy)d apprenant occupé sur %(total)d",
            "%(busy)d apprenants occupés sur %(total)d",
            busy,
        ) % {"busy": busy, "total": total},
        ngettext("%(count)d libre", "%(count)d libres", availability.free)
        % {"count": availability.free},
        _unknown(availability.unknown),
    ])  # fmt: skip


def _names(availability: Availability) -> str:
    return ", ".join(learner.name for learner in availability.busy)


def move_warning(availability: Availability) -> str:
    """ "À ce nouvel horaire, 4 apprenants sur 12 sont occupés : ...", names included."""
    busy, total = len(availability.busy), availability.known + availability.unknown
    text = ngettext(
        "À ce nouvel horaire, %(busy)d apprenant sur %(total)d est occupé : %(names)s.",
        "À ce nouvel horaire, %(busy)d apprenants sur %(total)d sont occupés : %(names)s.",
        busy,
    ) % {"busy": busy, "total": total, "names": _names(availability)}
    if availability.unknown:
        text += " " + ngettext(
            "%(count)d n'a pas d'agenda connecté ou ne partage pas ses disponibilités.",
            "%(count)d n'ont pas d'agenda connecté ou ne partagent pas leurs disponibilités.",
            availability.unknown,
        ) % {"count": availability.unknown}
    return text


def _duration(length: timedelta) -> str:
    hours, minutes = divmod(int(length.total_seconds()) // 60, 60)
    if minutes:
        return gettext("%(hours)d h %(minutes)02d") % {"hours": hours, "minutes": minutes}
    return gettext("%(hours)d h") % {"hours": hours}


# --- moving a formation: the warning, before saving ------------------------------------------


@dataclass(frozen=True)
class Clash:
    """Learners busy at the times a formation is being moved to; `token` names those times:
    "Enregistrer quand même" holds for them only."""

    availability: Availability
    token: str


def _times_token(start: datetime, end: datetime) -> str:
    return f"{start.astimezone(UTC).isoformat()}/{end.astimezone(UTC).isoformat()}"


class FormationAvailabilityForm(FormationAdminForm):
    """The formation's form: moving it (start, end or zone) to a time when some of its
    learners are busy is refused once, with their count and names, until "Enregistrer quand
    même" is ticked for those times. Works without JavaScript."""

    # Times chosen on the free slots page, shown in place of the saved ones (set by the admin).
    proposed: tuple[datetime, datetime] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clash: Clash | None = None
        self.confirmed: Availability | None = None  # saved although these learners are busy
        if self.proposed and not self.is_bound:
            for name, value in zip(("start", "end"), self.proposed, strict=True):
                self.initial[name] = value.astimezone(self.instance.tz).replace(tzinfo=None)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        formation = self.instance
        start, end = cleaned.get("start"), cleaned.get("end")
        if (
            formation.pk is None  # its learners are enrolled once it is saved
            or start is None
            or end is None
            or end <= start
            or cleaned.get("status") == Formation.Status.CANCELLED
            or (start == formation.start and end == formation.end)
        ):
            return cleaned
        availability = formation_availability(formation=formation, start=start, end=end)
        if not availability.busy:
            return cleaned
        token = _times_token(start, end)
        if self.data.get(self.add_prefix(CONFIRM)) == token:
            self.confirmed = availability
            return cleaned
        self.clash = Clash(availability, token)
        raise ValidationError(move_warning(availability))


def _proposed(request: HttpRequest) -> tuple[datetime, datetime] | None:
    """The times of a slot chosen on the free slots page (`?start=...&end=...`, ISO 8601 with
    an offset), if they make sense."""
    try:
        start = datetime.fromisoformat(request.GET["start"])
        end = datetime.fromisoformat(request.GET["end"])
    except (KeyError, ValueError):
        return None
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        return None
    return start, end


# --- free slots --------------------------------------------------------------------------------


class SlotRangeForm(forms.Form):
    since = forms.DateField(
        label=_("Du"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    until = forms.DateField(
        label=_("Au (inclus)"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until:
            if until < since:
                raise ValidationError(_("La date de fin précède la date de début."))
            if (until - since).days >= SLOT_RANGE_MAX_DAYS:
                raise ValidationError(
                    _("Choisissez une période de %(days)d jours au plus.")
                    % {"days": SLOT_RANGE_MAX_DAYS}
                )
        return cleaned


@dataclass(frozen=True)
class SlotRow:
    slot: Slot
    current: bool  # the formation's own times
    url: str  # its change form, with these times filled in ("" without the permission)


# --- the admin ---------------------------------------------------------------------------------

admin.site.unregister(Formation)


@admin.register(Formation)
class FormationAvailabilityAdmin(FormationAdmin):
    form = FormationAvailabilityForm
    change_form_template = "admin/calendars/formation_change_form.html"
    list_display = [*FormationAdmin.list_display, "busy_learners"]

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/slots/",
                self.admin_site.admin_view(self.slots_view),
                name="{}_{}_slots".format(*info),
            ),
            *super().get_urls(),
        ]

    # The change page: who is busy at the formation's time.

    def get_fieldsets(self, request: HttpRequest, obj: Formation | None = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None:
            return fieldsets
        where = next(i for i, fieldset in enumerate(fieldsets) if "start" in fieldset[1]["fields"])
        heading = _("Disponibilité des apprenants")
        fieldsets.insert(where + 1, (heading, {"fields": ["availability"]}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Formation | None = None) -> Any:
        return [*super().get_readonly_fields(request, obj), "availability"]

    @admin.display(description=_("à l'horaire actuel"))
    def availability(self, obj: Formation) -> str:
        # The saved times: a form sent back with a warning has already set the new ones on obj.
        start, end = Formation.objects.filter(pk=obj.pk).values_list("start", "end").get()
        availability = formation_availability(formation=obj, start=start, end=end)
        names = gettext("Occupés : %(names)s") % {"names": _names(availability)}
        busy = format_html("<p>{}</p>", names) if availability.busy else ""
        slots = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_slots", args=[obj.pk])
        return format_html(
            '<p class="availability-summary">{}</p>{}<p><a href="{}">{}</a></p>',
            availability_summary(availability),
            busy,
            slots,
            gettext("Trouver un créneau"),
        )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False,
                 **kwargs: Any) -> Any:  # fmt: skip
        form = super().get_form(request, obj, change, **kwargs)
        # Only to show the form: a POST compares what is sent with the saved times.
        proposed = _proposed(request) if obj is not None and request.method == "GET" else None
        if proposed is None:
            return form
        return type(form.__name__, (form,), {"proposed": proposed})

    def save_model(self, request: HttpRequest, obj: Formation, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if form.confirmed is not None:
            self.message_user(request, move_warning(form.confirmed), messages.WARNING)

    # The list: how many are busy, for the whole page at once.

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        formations = list(changelist.result_list)
        scheduled = [f for f in formations if f.status == Formation.Status.SCHEDULED]
        counts = formations_busy_counts(scheduled)
        for formation in formations:
            formation._busy_learners = counts.get(formation.pk)
        return changelist

    @admin.display(description=_("occupés"))
    def busy_learners(self, obj: Formation) -> int | None:
        return getattr(obj, "_busy_learners", None)  # None: "—", cancelled

    # Free slots.

    def slots_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        formation = self.get_object(request, unquote(object_id))
        if formation is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, formation):
            raise PermissionDenied
        today = timezone.localdate(timezone.now(), formation.tz)
        default = {"since": today, "until": today + timedelta(weeks=SLOT_WEEKS, days=-1)}
        form = SlotRangeForm(request.GET or None, initial=default)
        chosen: dict[str, date] | None = default
        if form.is_bound:
            chosen = form.cleaned_data if form.is_valid() else None
        rows, unknown = [], 0
        if chosen is not None:
            slots, unknown = free_slots(
                formation=formation,
                since=chosen["since"],
                until=chosen["until"] + timedelta(days=1),
                now=timezone.now(),
            )
            rows = self._slot_rows(request, formation, slots)
        enrolled = formation.enrollments.count()
        length = formation.end - formation.start
        opening, closing = (time_format(t, "TIME_FORMAT") for t in WORK_HOURS)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Trouver un créneau"),
            "subtitle": str(formation),
            "opts": self.opts,
            "original": formation,
            "form": form,
            "chosen": chosen,
            "rows": rows,
            "enrolled": enrolled,
            "unknown": unknown,
            "known": enrolled - unknown,
            "duration": _duration(length),
            "opening": opening,
            "closing": closing,
            "too_long": datetime.combine(today, WORK_HOURS[0]) + length
            > datetime.combine(today, WORK_HOURS[1]),
        }
        if chosen is not None:
            context["since"] = date_format(chosen["since"], "DATE_FORMAT")
            context["until"] = date_format(chosen["until"], "DATE_FORMAT")
        return TemplateResponse(request, "admin/calendars/formation_slots.html", context)

    def _slot_rows(self, request: HttpRequest, formation: Formation,
                   slots: list[Slot]) -> list[SlotRow]:  # fmt: skip
        change = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[formation.pk]
        )
        may_move = self.has_change_permission(request, formation)
        rows = []
        for slot in slots:
            current = slot.start == formation.start and slot.end == formation.end
            times = urlencode({"start": slot.start.isoformat(), "end": slot.end.isoformat()})
            rows.append(SlotRow(slot, current, f"{change}?{times}" if may_move else ""))
        return rows
