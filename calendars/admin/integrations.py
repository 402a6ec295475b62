"""Support's view of the learners' calendar integrations, their sync history and the
providers' faults."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts.models import SecurityEvent
from accounts.security import security_event_record
from calendars.errors import ProviderError
from calendars.failures import failure_by_code
from calendars.health import RECENT, provider_health
from calendars.models import (
    CalendarIntegration,
    FormationExport,
    ProviderFault,
    PushChannel,
    SyncRun,
)
from calendars.providers.names import PROVIDERS
from calendars.services.connection import integration_update_settings
from calendars.services.credentials import (
    integration_access_token,
    integration_mark_needs_reconnect,
)
from calendars.services.lifecycle import integration_disconnect
from calendars.tasks import dispatch_sync
from core.admin import HistoryAdmin

CHOICES = ["import_enabled", "export_enabled", "sync_enabled"]


def _staff_log(request: HttpRequest, integration: CalendarIntegration, action: str) -> None:
    """What staff did to a learner's integration, in the security log (the learner sees it)."""
    security_event_record(
        kind=SecurityEvent.Kind.STAFF_ACTION,
        user_id=integration.user_id,
        actor=request.user,
        service=PROVIDERS[integration.provider].label,
        account=integration.account_email,
        detail=action,
    )


# A failure as the learner is told it (its code and sentence), then as it happened.
FOLLOW_UP = [
    "last_error_code", "learner_message", "last_error", "last_error_at", "last_synced_at",
    "updated_at",
]  # fmt: skip


class FormationExportInline(admin.TabularInline):
    """What was written to the learner's calendar: read-only, the export engine owns it."""

    model = FormationExport
    fields = ["formation", "formation_uid", "state", "external_id", "updated_at", "last_error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PushChannelInline(admin.TabularInline):
    """The push channels open with the provider (the secret's digest is not shown)."""

    model = PushChannel
    fields = ["calendar", "channel_id", "expires_at", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


RECENT_RUNS = 10


def _learner_message(code: str, detail: str) -> str:
    """The catalogue's sentence for a recorded failure, with its code; "" when there is none."""
    if not (code or detail):
        return ""
    failure = failure_by_code(code)
    return f"{failure.message} [{failure.code}]"


@admin.register(CalendarIntegration)
class CalendarIntegrationAdmin(admin.ModelAdmin):
    """Support's view of the learners' connections.

    `credentials` is never listed, shown or exported: every field is named here, and a test
    looks for the sandbox's tokens in the pages. Integrations are only created by a learner's
    consent and only removed through "Déconnecter", which revokes the grant first.
    """

    list_display = [
        "user", "provider", "account_email", "status", *CHOICES,
        "token_expires_at", "last_error_code", "last_error_at",
    ]  # fmt: skip
    list_filter = ["provider", "status", "last_error_code"]
    search_fields = ["user__username", "user__email", "account_email"]
    list_select_related = ["user"]
    inlines = [PushChannelInline, FormationExportInline]
    change_list_template = "admin/calendars/calendarintegration/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "health/",
                self.admin_site.admin_view(self.health_view),
                name="calendars_provider_health",
            ),
            *super().get_urls(),
        ]

    def health_view(self, request: HttpRequest) -> TemplateResponse:
        """État des fournisseurs: each provider's figures (calendars.health)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": _("État des fournisseurs"),
            "opts": self.opts,
            "providers": provider_health(),
            "recent_minutes": int(RECENT.total_seconds() // 60),
        }
        return TemplateResponse(request, "admin/calendars/provider_health.html", context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[CalendarIntegration]:
        # Never decrypted to be shown: a credential no key can read must not break the admin.
        return super().get_queryset(request).defer("credentials")

    fieldsets = [
        (None, {"fields": ["user", "provider", "account_email", "account_name", "status"]}),
        (_("Choix de l'apprenant"), {"fields": CHOICES}),
        (_("Autorisation"), {"fields": ["granted_scopes", "token_expires_at", "connected_at"]}),
        (_("Suivi"), {"fields": FOLLOW_UP}),
        (
            _("Synchronisation en arrière-plan"),
            {"fields": ["next_sync_at", "sync_failures", "sync_requested_at", "recent_runs"]},
        ),
    ]
    readonly_fields = [
        "user", "provider", "account_email", "account_name", "status", "granted_scopes",
        "token_expires_at", "connected_at", "last_error_code", "learner_message", "last_error",
        "last_error_at", "last_synced_at", "updated_at", "next_sync_at", "sync_failures",
        "sync_requested_at", "recent_runs",
    ]  # fmt: skip
    actions = ["sync_now", "refresh_tokens", "mark_needs_reconnect", "disconnect"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting the row would leave the grant alive at the provider

    @admin.display(description=_("autorisations accordées"))
    def granted_scopes(self, obj: CalendarIntegration) -> str:
        return format_html_join("\n", "<div>{}</div>", ((scope,) for scope in obj.scopes))

    @admin.display(description=_("message à l'apprenant"))
    def learner_message(self, obj: CalendarIntegration) -> str:
        """What the learner reads about the last error (`last_error` is the detail)."""
        return _learner_message(obj.last_error_code, obj.last_error)

    @admin.display(description=_("dernières synchronisations"))
    def recent_runs(self, obj: CalendarIntegration) -> str:
        runs = obj.sync_runs.all()[:RECENT_RUNS]
        if not runs:
            return gettext("Aucune")
        rows = format_html_join(
            "\n",
            "<li>{} — {} ({}) : +{} ~{} −{} {} {}</li>",
            (
                (
                    # In the staff member's zone, as the admin's other dates.
                    date_format(timezone.localtime(run.started_at), "SHORT_DATETIME_FORMAT"),
                    run.get_trigger_display(),
                    run.get_direction_display(),
                    run.created,
                    run.updated,
                    run.deleted,
                    f"[{run.error_code or 'unknown'}]" if run.error else "",
                    run.error or ("" if run.finished_at else gettext("en cours")),
                )
                for run in runs
            ),
        )
        link = reverse("admin:calendars_syncrun_changelist") + f"?integration__id__exact={obj.pk}"
        return format_html(
            '<ul class="recent-runs">{}</ul><a href="{}">{}</a>', rows, link, gettext("Toutes")
        )

    @admin.action(description=_("Synchroniser maintenant"))
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Sends a sync of each integration (run by the workers, or here without them)."""
        count = 0
        for integration in queryset.exclude(status=CalendarIntegration.Status.NEEDS_RECONNECT):
            dispatch_sync(integration.pk, SyncRun.Trigger.ADMIN)
            _staff_log(request, integration, "sync_now")
            count += 1
        skipped = queryset.count() - count
        self.message_user(
            request,
            ngettext(
                "Synchronisation demandée pour %(count)d intégration.",
                "Synchronisation demandée pour %(count)d intégrations.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d intégration à reconnecter n'a pas été synchronisée.",
                    "%(count)d intégrations à reconnecter n'ont pas été synchronisées.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        integration_update_settings(
            integration=obj, **{name: form.cleaned_data[name] for name in CHOICES}
        )
        _staff_log(request, obj, "settings_changed")

    @admin.action(description=_("Rafraîchir les jetons maintenant"))
    def refresh_tokens(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        refreshed, failures = 0, []
        for integration in queryset.select_related("user"):
            _staff_log(request, integration, "refresh_tokens")
            try:
                integration_access_token(integration=integration, force=True)
            except ProviderError as error:  # the message never holds a token
                failures.append(f"{integration}: {error.message}")
            else:
                refreshed += 1
        if refreshed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d intégration a de nouveaux jetons.",
                    "%(count)d intégrations ont de nouveaux jetons.",
                    refreshed,
                )
                % {"count": refreshed},
                messages.SUCCESS,
            )
        if failures:
            self.message_user(
                request,
                gettext("Échec du rafraîchissement : %(failures)s")
                % {"failures": " ; ".join(failures)},
                messages.ERROR,
            )

    @admin.action(description=_("Marquer « à reconnecter »"))
    def mark_needs_reconnect(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        reason = gettext("Marquée « à reconnecter » par l'équipe d'assistance.")
        count = 0
        for integration in queryset:
            _staff_log(request, integration, "mark_needs_reconnect")
            integration_mark_needs_reconnect(integration=integration, reason=reason)
            self.log_change(request, integration, reason)
            count += 1
        self.message_user(
            request,
            ngettext(
                "%(count)d intégration marquée « à reconnecter ».",
                "%(count)d intégrations marquées « à reconnecter ».",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Déconnecter"))
    def disconnect(self, request: HttpRequest, queryset: QuerySet[Any]) -> TemplateResponse | None:
        """Asks first: the grant is revoked at the provider, which cannot be undone."""
        if request.POST.get("post") != "yes":
            return TemplateResponse(
                request,
                "admin/calendars/calendarintegration/disconnect_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": _("Déconnecter ces intégrations ?"),
                    "opts": self.model._meta,
                    "queryset": queryset.select_related("user"),
                    "action_checkbox_name": ACTION_CHECKBOX_NAME,
                },
            )
        integrations = list(queryset)
        self.log_deletions(request, integrations)
        for integration in integrations:
            _staff_log(request, integration, "disconnect")
            integration_disconnect(integration=integration)
        self.message_user(
            request,
            ngettext(
                "%(count)d intégration déconnectée.",
                "%(count)d intégrations déconnectées.",
                len(integrations),
            )
            % {"count": len(integrations)},
            messages.SUCCESS,
        )
        return None


@admin.register(SyncRun)
class SyncRunAdmin(HistoryAdmin, admin.ModelAdmin):
    """The history of syncs, for support: read-only."""

    list_display = [
        "started_at", "integration", "trigger", "direction", "duration", "created", "updated",
        "deleted", "skipped", "requests", "outcome", "error_code",
    ]  # fmt: skip
    list_filter = [
        "trigger",
        "direction",
        "integration__provider",
        ("error", admin.EmptyFieldListFilter),
        "error_code",
    ]
    search_fields = ["integration__user__username", "integration__account_email", "error"]
    list_select_related = ["integration__user"]
    date_hierarchy = "started_at"
    readonly_fields = [
        "integration", "trigger", "direction", "started_at", "finished_at", "created",
        "updated", "deleted", "skipped", "requests", "error_code", "learner_message", "error",
        "warning",
    ]  # fmt: skip
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[SyncRun]:
        return super().get_queryset(request).defer("integration__credentials")

    @admin.display(description=_("message à l'apprenant"))
    def learner_message(self, run: SyncRun) -> str:
        """What the learner reads about the run's failure (`error` is the detail)."""
        return _learner_message(run.error_code, run.error)

    @admin.display(description=_("durée"))
    def duration(self, run: SyncRun) -> str:
        if run.finished_at is None:
            return "…"
        return f"{(run.finished_at - run.started_at).total_seconds():.1f} s"

    @admin.display(description=_("résultat"))
    def outcome(self, run: SyncRun) -> str:
        if run.finished_at is None:
            return gettext("en cours")
        if run.error:
            return gettext("échec")
        return gettext("réussie, avec un avertissement") if run.warning else gettext("réussie")


@admin.register(ProviderFault)
class ProviderFaultAdmin(admin.ModelAdmin):
    """A provider refusing the application's own credentials: what to fix, read-only.
    Deleting the fault lets that provider's syncs go at once (after the fix); configuring other
    credentials lifts it by itself."""

    list_display = ["provider", "detected_at", "probe_at", "detail"]
    readonly_fields = ["provider", "detected_at", "probe_at", "detail"]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
