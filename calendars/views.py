from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from calendars.forms import IntegrationSettingsForm
from calendars.models import CalendarIntegration
from calendars.providers import PROVIDERS
from calendars.providers.base import ProviderError, ReconnectRequired
from calendars.services import (
    ConnectError,
    integration_choose_calendars,
    integration_connect_finish,
    integration_connect_start,
    integration_disconnect,
    integration_refresh_calendars,
    integration_update_settings,
)
from formations.models import Formation


@require_GET
def calendar_page(request: HttpRequest) -> HttpResponse:
    """Until external calendars are imported, the learner's coming formations in date order."""
    upcoming = Formation.objects.for_learner(request.user).upcoming(timezone.now())[:20]
    return render(request, "calendars/calendar.html", {"upcoming": upcoming})


def _provider_or_404(name: str) -> str:
    if name not in PROVIDERS:
        raise Http404
    return name


def redirect_uri(request: HttpRequest, provider: str) -> str:
    configured = {"google": settings.GOOGLE_REDIRECT_URI, "outlook": settings.OUTLOOK_REDIRECT_URI}
    return configured.get(provider) or request.build_absolute_uri(
        reverse("calendars:callback", args=[provider])
    )


@require_GET
def settings_calendars(request: HttpRequest) -> HttpResponse:
    integrations = {
        i.provider: i
        # Never decrypted to list them: a credential no key reads must not lock the page.
        for i in CalendarIntegration.objects.filter(user=request.user)
        .defer("credentials")
        .prefetch_related("calendars")
    }
    cards = [
        {
            "name": name,
            "provider": provider,
            "integration": integrations.get(name),
            "form": IntegrationSettingsForm.for_integration(integrations.get(name)),
        }
        for name, provider in PROVIDERS.items()
    ]
    return render(request, "calendars/settings.html", {"cards": cards, "tab": "calendars"})


@require_POST
def connect(request: HttpRequest, provider: str) -> HttpResponse:
    provider = _provider_or_404(provider)
    existing = CalendarIntegration.objects.filter(user=request.user, provider=provider).first()
    try:
        url = integration_connect_start(
            user=request.user,
            provider_name=provider,
            redirect_uri=redirect_uri(request, provider),
            login_hint=existing.account_email if existing else "",
        )
    except ConnectError as error:
        messages.error(request, error.message)
        return redirect("settings_calendars")
    return redirect(url)


@require_GET
def callback(request: HttpRequest, provider: str) -> HttpResponse:
    provider = _provider_or_404(provider)
    try:
        integration = integration_connect_finish(
            user=request.user, provider_name=provider, params=request.GET.dict()
        )
    except ConnectError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("%(provider)s est connecté (%(account)s).")
            % {"provider": PROVIDERS[provider].title, "account": integration.account_email},
        )
    return redirect("settings_calendars")


@require_POST
def update_settings(request: HttpRequest, provider: str) -> HttpResponse:
    integration = get_object_or_404(
        CalendarIntegration.objects.defer("credentials"),
        user=request.user,
        provider=_provider_or_404(provider),
    )
    form = IntegrationSettingsForm(request.POST, prefix=integration.provider)
    if not form.is_valid():
        return redirect("settings_calendars")
    integration_update_settings(integration=integration, **form.cleaned_data)
    if integration.calendars.exists():
        try:
            integration_choose_calendars(
                integration=integration,
                imported=_ids(request.POST.getlist(f"{provider}-import_calendars")),
                export_target=next(iter(_ids([request.POST.get(f"{provider}-export_calendar")])),
                                   None),
            )  # fmt: skip
        except ValueError:
            messages.error(
                request,
                _("Ce calendrier est en lecture seule : il ne peut pas recevoir vos formations."),
            )
            return redirect("settings_calendars")
    messages.success(request, _("Vos réglages de synchronisation sont enregistrés."))
    return redirect("settings_calendars")


def _ids(values: list[str | None]) -> set[int]:
    return {int(v) for v in values if v and v.isdigit()}


@require_POST
def refresh_calendars(request: HttpRequest, provider: str) -> HttpResponse:
    integration = get_object_or_404(
        CalendarIntegration.objects.defer("credentials"),
        user=request.user,
        provider=_provider_or_404(provider),
    )
    try:
        integration_refresh_calendars(integration=integration)
    except ReconnectRequired:
        messages.error(request, _("L'accès à ce calendrier a été retiré : reconnectez-le."))
    except ProviderError:
        messages.error(
            request,
            _("Le fournisseur n'a pas pu donner la liste de vos calendriers. Réessayez plus tard."),
        )
    else:
        messages.success(request, _("La liste de vos calendriers est à jour."))
    return redirect("settings_calendars")


@require_POST
def disconnect(request: HttpRequest, provider: str) -> HttpResponse:
    integration = get_object_or_404(
        CalendarIntegration.objects.defer("credentials"),
        user=request.user,
        provider=_provider_or_404(provider),
    )
    integration_disconnect(integration=integration)
    messages.success(
        request,
        _("%(provider)s est déconnecté : ses identifiants sont effacés.")
        % {"provider": PROVIDERS[provider].title},
    )
    return redirect("settings_calendars")
