"""What the apps' admins share."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class HistoryAdmin:
    """A ModelAdmin mixin for a history the application alone writes (sync runs, the security
    log): staff read it; nobody adds, changes or deletes a row (they go when pruned)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
