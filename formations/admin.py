from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth import get_user_model
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from formations.feeds import feed_regenerate
from formations.models import CalendarFeed, Enrollment, Formation
from formations.services import formation_cancel


class FormationAdminForm(forms.ModelForm):
    """Start and end are typed and shown as wall-clock times of the formation's own zone.

    A formation in Montréal is entered as "9:00" there, whatever the staff member's own zone.
    """

    class Meta:
        model = Formation
        fields = [
            "title", "description", "trainer", "status",
            "time_zone", "start", "end", "location", "online_url",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in ("start", "end"):
                local = getattr(self.instance, name).astimezone(self.instance.tz)
                self.initial[name] = local.replace(tzinfo=None)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        zone_name = cleaned.get("time_zone")
        if zone_name:
            zone = zoneinfo.ZoneInfo(zone_name)
            for name in ("start", "end"):
                if value := cleaned.get(name):
                    # The form made the typed time aware in the staff member's zone: undo that.
                    cleaned[name] = timezone.make_aware(timezone.make_naive(value), zone)
        return cleaned


class LearnerAutocomplete(AutocompleteSelect):
    """The learner's search box, showing an enrolled learner from `known` (read once for the
    whole list) rather than with a query of its own on each row."""

    known: dict[str, Any] = {}

    def optgroups(self, name: str, value: Any, attr: Any = None) -> Any:
        selected = {str(v) for v in value if str(v) not in self.choices.field.empty_values}
        if not selected or not selected <= self.known.keys():
            return super().optgroups(name, value, attr)
        options = [] if self.is_required else [self.create_option(name, "", "", False, 0)]
        for pk in sorted(selected):
            label = self.choices.field.label_from_instance(self.known[pk])
            options.append(self.create_option(name, pk, label, selected, len(options)))
        return [(None, options, 0)]


class EnrollmentInline(admin.TabularInline):
    """The formation's learners. A formation may have hundreds: the page's queries do not
    grow with them."""

    model = Enrollment
    extra = 1
    autocomplete_fields = ["learner"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Enrollment]:
        return super().get_queryset(request).select_related("learner", "formation")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "learner":
            kwargs["widget"] = LearnerAutocomplete(db_field, self.admin_site)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        widget = formset.form.base_fields["learner"].widget
        widget = getattr(widget, "widget", widget)  # inside the add/change links' wrapper
        if obj is not None and isinstance(widget, LearnerAutocomplete):
            learners = get_user_model().objects.filter(enrollments__formation=obj)
            widget.known = {str(learner.pk): learner for learner in learners}
        return formset


@admin.register(Formation)
class FormationAdmin(admin.ModelAdmin):
    form = FormationAdminForm
    list_display = ["title", "start", "end", "time_zone", "trainer", "status", "learner_count"]
    list_filter = ["status", "start", ("time_zone", admin.AllValuesFieldListFilter)]
    search_fields = ["title", "description", "trainer", "location"]
    date_hierarchy = "start"
    inlines = [EnrollmentInline]
    readonly_fields = ["sequence", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["title", "description", "trainer", "status"]}),
        (_("Date et lieu"), {"fields": ["time_zone", "start", "end", "location", "online_url"]}),
        (_("Suivi"), {"fields": ["sequence", "created_at", "updated_at"]}),
    ]
    actions = ["cancel_formations"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Formation]:
        return super().get_queryset(request).annotate(learner_count=Count("enrollments"))

    @admin.display(description=_("inscrits"), ordering="learner_count")
    def learner_count(self, obj: Formation) -> int:
        return obj.learner_count

    @admin.action(description=_("Annuler les formations sélectionnées"))
    def cancel_formations(self, request: HttpRequest, queryset: QuerySet[Formation]) -> None:
        cancelled = sum(formation_cancel(formation=f) for f in queryset)
        self.message_user(
            request,
            ngettext("%(count)d formation annulée.", "%(count)d formations annulées.", cancelled)
            % {"count": cancelled},
            messages.SUCCESS,
        )


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["learner", "formation", "created_at"]
    list_filter = ["formation__status"]
    search_fields = ["learner__username", "learner__email", "formation__title"]
    autocomplete_fields = ["learner", "formation"]
    list_select_related = ["learner", "formation"]


@admin.register(CalendarFeed)
class CalendarFeedAdmin(admin.ModelAdmin):
    """Read-only, and the token is never listed nor shown: the address is the learner's secret.
    Support can only replace it, for a learner whose address leaked."""

    list_display = ["user", "created_at", "changed_at"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]
    fields = ["user", "created_at", "changed_at"]
    readonly_fields = fields
    actions = ["regenerate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Remplacer l'adresse des abonnements sélectionnés"))
    def regenerate(self, request: HttpRequest, queryset: QuerySet[CalendarFeed]) -> None:
        feeds = list(queryset.select_related("user"))
        for feed in feeds:
            feed_regenerate(user=feed.user)
            self.log_change(request, feed, gettext("Adresse remplacée"))
        self.message_user(
            request,
            ngettext(
                "%(count)d adresse remplacée : l'ancienne ne fonctionne plus.",
                "%(count)d adresses remplacées : les anciennes ne fonctionnent plus.",
                len(feeds),
            )
            % {"count": len(feeds)},
            messages.SUCCESS,
        )
