from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST, require_safe

from formations import feeds
from formations.ics import build_ics
from formations.models import Formation

# Calendar programs poll on their own schedule (15 minutes to a day); max-age only bounds how
# long a cache may answer in our place, so no cached copy is more than 15 minutes behind.
FEED_MAX_AGE = 15 * 60


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


@login_not_required  # calendar programs have no session: the secret token is the credential
@require_safe
def feed_ics(request: HttpRequest, token: str) -> HttpResponse:
    feed = feeds.feed_by_token(token=token)
    if feed is None:
        raise Http404
    document = feeds.feed_document(
        feed=feed, absolute_url=lambda f: request.build_absolute_uri(f.get_absolute_url())
    )
    response = HttpResponse(document.body, content_type="text/calendar; charset=utf-8")
    response["ETag"] = document.etag
    response["Last-Modified"] = http_date(document.last_modified.timestamp())
    response["Cache-Control"] = f"private, max-age={FEED_MAX_AGE}"
    response["X-Robots-Tag"] = "noindex"
    response["Content-Language"] = document.language
    # Built in full before the check, on purpose: the ETag is a digest of the bytes, so it
    # moves with anything in them (a formation, the learner's language, the host's name).
    return get_conditional_response(
        request,
        etag=document.etag,
        last_modified=int(document.last_modified.timestamp()),
        response=response,
    )


@require_POST
def feed_regenerate(request: HttpRequest) -> HttpResponse:
    feeds.feed_regenerate(user=request.user)
    messages.success(
        request,
        _(
            "Votre calendrier a une nouvelle adresse : l'ancienne ne fonctionne plus. "
            "Abonnez-vous de nouveau dans vos programmes de calendrier."
        ),
    )
    return redirect(reverse("settings_calendars") + "#calendar-feed")
