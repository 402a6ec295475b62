from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.forms import ApiTokenForm, ProfileForm
from accounts.models import ApiToken, Profile, SecurityEvent
from accounts.security import security_event_describe
from accounts.services import api_token_create, api_token_revoke
from core.readiness import readiness


def _remember_language(response: HttpResponse, language: str) -> None:
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
    )


@require_http_methods(["GET", "POST"])
def settings_profile(request: HttpRequest) -> HttpResponse:
    # Not saved until the learner submits: a stored language would outrank the cookie.
    profile = Profile.objects.filter(user=request.user).first() or Profile(
        user=request.user, language=request.LANGUAGE_CODE
    )
    form = ProfileForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        form.save()
        translation.activate(profile.language)
        messages.success(request, _("Vos préférences ont été enregistrées."))
        response = redirect("settings")
        _remember_language(response, profile.language)
        return response
    return render(request, "accounts/settings_profile.html", {"form": form, "tab": "profile"})


@never_cache  # the POST answer carries a new token: no cache may keep it
@require_http_methods(["GET", "POST"])
def settings_api(request: HttpRequest) -> HttpResponse:
    """Personal API tokens: list, create (the token is shown in this answer only), revoke."""
    form = ApiTokenForm(request.POST or None)
    created = token = None
    if request.method == "POST" and form.is_valid():
        created, token = api_token_create(user=request.user, name=form.cleaned_data["name"])
        form = ApiTokenForm()
    tokens = ApiToken.objects.filter(user=request.user, revoked_at__isnull=True)
    context = {"form": form, "tokens": tokens, "created": created, "token": token, "tab": "api"}
    return render(request, "accounts/settings_api.html", context)


@require_POST
def settings_api_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    api_token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    api_token_revoke(api_token=api_token)
    messages.success(
        request,
        _("Le jeton « %(name)s » est révoqué : il ne donne plus accès à l'API.")
        % {"name": api_token.name},
    )
    return redirect("settings_api")


# The learner's page shows the latest entries; staff see them all in the admin.
SECURITY_PAGE_ENTRIES = 100


@require_GET
def settings_security(request: HttpRequest) -> HttpResponse:
    """The learner's own security log: what happened to their account, when, from where."""
    events = list(
        SecurityEvent.objects.filter(user=request.user)
        .only("occurred_at", "kind", "actor_id", "address", "service", "account", "detail")
        [:SECURITY_PAGE_ENTRIES]
    )  # fmt: skip
    rows = [(event, security_event_describe(event)) for event in events]
    context = {
        "rows": rows,
        "retention_days": settings.SECURITY_LOG_RETENTION_DAYS,
        "tab": "security",
    }
    return render(request, "accounts/settings_security.html", context)


@login_not_required
@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """The language switcher: remembered in the profile when signed in, else in a cookie."""
    language = request.POST.get("language", "")
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("formations:list")
    response = HttpResponseRedirect(next_url)
    if language in dict(settings.LANGUAGES):
        if request.user.is_authenticated:
            Profile.objects.update_or_create(user=request.user, defaults={"language": language})
        _remember_language(response, language)
    return response


@login_not_required
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches no service."""
    return HttpResponse("ok", content_type="text/plain")


@never_cache
@login_not_required
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: the database and, when configured, the broker answer. 503 names what does
    not (names only: no address, no credential)."""
    checks = readiness()
    failed = [name for name, passed in checks.items() if not passed]
    if failed:
        return HttpResponse(
            "not ready: " + ", ".join(failed), content_type="text/plain", status=503
        )
    return HttpResponse("ok", content_type="text/plain")
