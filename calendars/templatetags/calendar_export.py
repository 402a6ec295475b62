"""The formation page's "in my calendar" panel: formations know nothing of calendars, so
their page asks this tag."""

from __future__ import annotations

from typing import Any

from django import template

from calendars.models import CalendarIntegration, FormationExport
from calendars.providers.names import PROVIDERS

register = template.Library()


@register.inclusion_tag("calendars/_formation_export.html", takes_context=True)
def formation_calendars(context: template.Context, formation: Any) -> dict[str, Any]:
    user = context["request"].user
    integrations = list(
        CalendarIntegration.objects.filter(user=user).defer("credentials").order_by("provider")
    )
    exports = {
        row.integration_id: row
        for row in FormationExport.objects.filter(
            integration__in=integrations, formation_uid=formation.uid
        )
    }
    return {
        "formation": formation,
        "csrf_token": context.get("csrf_token"),
        "entries": [
            {
                "integration": integration,
                "label": integration.provider.capitalize(),
                "export": exports.get(integration.pk),
            }
            for integration in integrations
        ],
        "can_connect": any(p.is_configured() for p in PROVIDERS.values()),
    }
