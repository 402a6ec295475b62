from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from formations.ics import build_ics
from formations.models import Formation


def _learner_formation(request: HttpRequest, pk: int) -> Formation:
    return get_object_or_404(Formation.objects.for_learner(request.user), pk=pk)


@require_GET
def formation_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    mine = Formation.objects.for_learner(request.user)
    return render(
        request,
        "formations/list.html",
        {"upcoming": mine.upcoming(now), "past": mine.past(now)},
    )


@require_GET
def formation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    formation = _learner_formation(request, pk)
    return render(request, "formations/detail.html", {"formation": formation})


@require_GET
def formation_ics(request: HttpRequest, pk: int) -> HttpResponse:
    formation = _learner_formation(request, pk)
    body = build_ics(
        [formation], absolute_url=lambda f: request.build_absolute_uri(f.get_absolute_url())
    )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="formation-{formation.pk}.ics"'
    return response
