from __future__ import annotations

import functools

from django.db.models import Q
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from calendars.models import CalendarIntegration, ProviderFault


def calendar_alerts(request: HttpRequest) -> dict[str, object]:
    """Banners on every page, from one query: integrations whose grant was lost (with a
    Reconnect button), and those whose provider refuses the application itself for now (a
    fault of ours: the learner has nothing to do).

    Read when a page shows them: the calendar page says the first in its sync states and
    gives the second from the same query as them (calendars.views.calendar_page)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    needs_reconnect = CalendarIntegration.Status.NEEDS_RECONNECT

    @functools.cache
    def rows() -> list[CalendarIntegration]:
        return list(
            CalendarIntegration.objects.filter(user=user)
            .filter(
                Q(status=needs_reconnect) | Q(provider__in=ProviderFault.objects.values("provider"))
            )
            .only("provider", "status", "reconnect_reason", "last_error_code")
            .order_by("provider")
        )

    return {
        "integrations_to_reconnect": SimpleLazyObject(
            lambda: [i for i in rows() if i.status == needs_reconnect]
        ),
        "integrations_unavailable": SimpleLazyObject(
            lambda: [i for i in rows() if i.status != needs_reconnect]
        ),
    }
