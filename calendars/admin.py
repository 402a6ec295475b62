from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from calendars.models import CalendarIntegration, FormationExport
from calendars.providers.base import ProviderError
from calendars.services import (
    integration_access_token,
    integration_disconnect,
    integration_mark_needs_reconnect,
    integration_update_settings,
)

CHOICES = ["import_enabled", "export_enabled", "sync_enabled"]


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


@admin.register(CalendarIntegration)
class CalendarIntegrationAdmin(admin.ModelAdmin):
    """Support's view of the learners' connections.

    `credentials` is never listed, shown or exported: every field is named here, and a test
    looks for the sandbox's tokens in the pages. Integrations are only created by a learner's
    consent and only removed through "Déconnecter", which revokes the grant first.
    """

    list_display = [
        "user", "provider", "account_email", "status", *CHOICES,
        "token_expires_at", "last_error_at",
    ]  # fmt: skip
    list_filter = ["provider", "status"]
    search_fields = ["user__username", "user__email", "account_email"]
    list_select_related = ["user"]
    inlines = [FormationExportInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CalendarIntegration]:
        # Never decrypted to be shown: a credential no key can read must not break the admin.
        return super().get_queryset(request).defer("credentials")

    fieldsets = [
        (None, {"fields": ["user", "provider", "account_email", "account_name", "status"]}),
        (_("Choix de l'apprenant"), {"fields": CHOICES}),
        (_("Autorisation"), {"fields": ["granted_scopes", "token_expires_at", "connected_at"]}),
        (_("Suivi"), {"fields": ["last_error", "last_error_at", "last_synced_at", "updated_at"]}),
    ]
    readonly_fields = [
        "user", "provider", "account_email", "account_name", "status", "granted_scopes",
        "token_expires_at", "connected_at", "last_error", "last_error_at", "last_synced_at",
        "updated_at",
    ]  # fmt: skip
    actions = ["refresh_tokens", "mark_needs_reconnect", "disconnect"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting the row would leave the grant alive at the provider

    @admin.display(description=_("autorisations accordées"))
    def granted_scopes(self, obj: CalendarIntegration) -> str:
        return format_html_join("\n", "<div>{}</div>", ((scope,) for scope in obj.scopes))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        integration_update_settings(
            integration=obj, **{name: form.cleaned_data[name] for name in CHOICES}
        )

    @admin.action(description=_("Rafraîchir les jetons maintenant"))
    def refresh_tokens(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        refreshed, failures = 0, []
        for integration in queryset.select_related("user"):
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
