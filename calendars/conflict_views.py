"""The formation page's conflicts with the learner's calendar: "Je m'en occupe" and
"Signaler à nouveau" (forms, no JavaScript needed), back on the formation's page."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from calendars.availability import busy_events
from calendars.services.conflicts import conflict_dismiss, conflict_restore
from formations.models import Formation


def _back(request: HttpRequest, formation_id: int, event_id: int) -> str:
    """The formation's page, at its conflicts; 404 unless the formation and the event are
    the learner's."""
    formation = get_object_or_404(Formation.objects.for_learner(request.user), pk=formation_id)
    if not busy_events([request.user.pk]).filter(pk=event_id).exists():
        raise Http404
    return f"{formation.get_absolute_url()}#conflicts"


@require_POST
def dismiss_conflict(request: HttpRequest, formation: int, event: int) -> HttpResponse:
    """No longer flagged (shown as dismissed on the formation's page), until the formation or
    the event moves."""
    back = _back(request, formation, event)
    if conflict_dismiss(user=request.user, formation_id=formation, event_id=event):
        messages.success(
            request,
            _("C'est noté : ce conflit ne vous est plus signalé, sauf si la formation ou "
              "l'événement change d'horaire."),
        )  # fmt: skip
    else:  # moved since the page was shown
        messages.info(request, _("Cet événement n'est plus en conflit avec la formation."))
    return redirect(back)


@require_POST
def restore_conflict(request: HttpRequest, formation: int, event: int) -> HttpResponse:
    back = _back(request, formation, event)
    conflict_restore(user=request.user, formation_id=formation, event_id=event)
    messages.success(request, _("Ce conflit vous est de nouveau signalé."))
    return redirect(back)
