from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiToken, SecurityEvent
from accounts.services import api_token_revoke
from core.admin import HistoryAdmin


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Read-only: a token is created (and seen, once) by its learner alone. Only its start is
    shown here, never the digest, which would help nobody but an attacker."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username", "user__email"]
    list_select_related = ["user"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Révoquer les jetons sélectionnés"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        active = list(queryset.filter(revoked_at__isnull=True))
        for api_token in active:
            api_token_revoke(api_token=api_token)
            self.log_change(request, api_token, gettext("Révoqué"))
        self.message_user(
            request,
            ngettext("%(count)d jeton révoqué.", "%(count)d jetons révoqués.", len(active))
            % {"count": len(active)},
            messages.SUCCESS,
        )


@admin.register(SecurityEvent)
class SecurityEventAdmin(HistoryAdmin, admin.ModelAdmin):
    """The security log, read-only: entries are written by the application alone and leave
    only when pruned (SECURITY_LOG_RETENTION_DAYS)."""

    list_display = [
        "occurred_at", "kind", "user", "actor", "address", "service", "account", "detail",
    ]  # fmt: skip
    list_filter = ["kind", "service", ("actor", admin.EmptyFieldListFilter), "occurred_at"]
    search_fields = [
        "user__username", "user__email", "actor__username", "account", "address", "detail",
    ]  # fmt: skip
    list_select_related = ["user", "actor"]
    date_hierarchy = "occurred_at"
    fields = list_display
    readonly_fields = fields
