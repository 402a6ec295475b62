from __future__ import annotations

from django.db.models import Q
from django.http import HttpRequest

from calendars.models import CalendarIntegration, ProviderFault


def calendar_alerts(request: HttpRequest) -> dict[str, object]:
    """Banners on every page, from one query: integrations whose grant was lost (with a
    Reconnect button), and those whose provider refuses the application itself for now (a
    fault of ours: the learner has nothing to do)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    needs_reconnect = CalendarIntegration.Status.NEEDS_RECONNECT
    rows = list(
        CalendarIntegration.objects.filter(user=user)
        .filter(
            Q(status=needs_reconnect) | Q(provider__in=ProviderFault.objects.values("provider"))
        )
        .only("provider", "status", "reconnect_reason", "last_error_code")
    )
    return {
        "integrations_to_reconnect": [i for i in rows if i.status == needs_reconnect],
        "integrations_unavailable": [i for i in rows if i.status != needs_reconnect],
    }
