from __future__ import annotations

from django.http import HttpRequest

from calendars.models import CalendarIntegration


def calendar_alerts(request: HttpRequest) -> dict[str, object]:
    """Integrations whose grant was lost: every page shows a banner with a Reconnect button."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "integrations_to_reconnect": CalendarIntegration.objects.filter(
            user=user, status=CalendarIntegration.Status.NEEDS_RECONNECT
        ).only("provider")
    }
