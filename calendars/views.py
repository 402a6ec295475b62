from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from formations.models import Formation


@require_GET
def calendar_page(request: HttpRequest) -> HttpResponse:
    """Until external calendars are connected, the learner's coming formations in date order."""
    upcoming = Formation.objects.for_learner(request.user).upcoming(timezone.now())[:20]
    return render(request, "calendars/calendar.html", {"upcoming": upcoming})
