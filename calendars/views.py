from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from calendars.agenda import VIEWS, agenda_items, days_of, parse_day, period_of, sources
from calendars.forms import IntegrationSettingsForm
from calendars.models import CalendarIntegration, FormationExport
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
from calendars.sync import (
    ExportRefused,
    ImportResult,
    formation_export,
    integration_export_quietly,
    integration_sync,
)
from formations.models import Formation


@require_GET
def calendar_page(request: HttpRequest) -> HttpResponse:
    """The learner's formations and imported events by month, week or 30-day agenda, in their
    time zone. `?view=` and `?date=` choose; anything else shows this month."""
    today = timezone.localdate()
    view = request.GET.get("view")
    period = period_of(
        view if view in VIEWS else "month", parse_day(request.GET.get("date")) or today
    )
    items = agenda_items(user=request.user, start=period.start, end=period.end)
    days = days_of(items, period.start, period.end)
    try:
        import_now_url = reverse("calendars:import_now")
    except NoReverseMatch:  # until the import view exists
        import_now_url = None
    context = {
        "period": period,
        "today": today,
        "days": days,
        "weeks": [days[i : i + 7] for i in range(0, len(days), 7)],
        "agenda_days": [day for day in days if day.entries],
        "sources": sources(),
        "import_now_url": import_now_url,
        "has_integrations": CalendarIntegration.objects.filter(user=request.user).exists(),
    }
    return render(request, "calendars/calendar.html", context)


def _provider_or_404(name: str) -> str:
    if name not in PROVIDERS:
        raise Http404
    return name


def learner_integration(user: Any, provider: str) -> CalendarIntegration:
    """The learner's own integration with `provider`, or 404. Credentials stay encrypted
    until used: one no key can read must not make the page fail."""
    return get_object_or_404(
        CalendarIntegration.objects.defer("credentials"), user=user, provider=provider
    )


def redirect_uri(request: HttpRequest, provider: str) -> str:
    configured = {"google": settings.GOOGLE_REDIRECT_URI, "outlook": settings.OUTLOOK_REDIRECT_URI}
    return configured.get(provider) or request.build_absolute_uri(
        reverse("calendars:callback", args=[provider])
    )


@require_POST
def import_now(request: HttpRequest) -> HttpResponse:
    """The calendar page's "Importer maintenant": every connected calendar, right away."""
    total = ImportResult()
    problems, imported = [], 0
    for integration in CalendarIntegration.objects.filter(
        user=request.user, import_enabled=True
    ).exclude(status=CalendarIntegration.Status.NEEDS_RECONNECT):
        try:
            total.add(integration_sync(integration=integration)[0])
            imported += 1
        except ReconnectRequired:
            pass  # the banner on every page says so
        except ProviderError:
            problems.append(PROVIDERS[integration.provider].title)
    if problems:
        messages.error(
            request,
            _("L'import de %(providers)s n'a pas abouti. Réessayez dans un instant.")
            % {"providers": ", ".join(problems)},
        )
        return redirect("calendars:calendar")
    if not imported:
        messages.warning(
            request,
            _("Aucun agenda à importer : connectez ou reconnectez-en un dans les paramètres."),
        )
        return redirect("calendars:calendar")
    messages.success(
        request,
        _(
            "Import terminé : %(created)d ajouté(s), %(updated)d modifié(s), "
            "%(deleted)d supprimé(s)."
        )
        % total.as_dict(),
    )
    return redirect("calendars:calendar")


@never_cache  # it shows the private feed address
@require_GET
def settings_calendars(request: HttpRequest) -> HttpResponse:
    integrations = {
        i.provider: i
        # Never decrypted to list them: a credential no key reads must not lock the page.
        for i in CalendarIntegration.objects.filter(user=request.user)
        .defer("credentials")
        .prefetch_related("calendars")
    }
    exported = dict(
        FormationExport.objects.filter(integration__user=request.user, create_sent=True)
        .exclude(state=FormationExport.State.REMOVED)
        .values_list("integration__provider")
        .annotate(count=Count("pk"))
    )
    cards = [
        {
            "name": name,
            "provider": provider,
            "integration": integrations.get(name),
            "form": IntegrationSettingsForm.for_integration(integrations.get(name)),
            "exported": exported.get(name, 0),
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
        integration_export_quietly(integration=integration)
        messages.success(
            request,
            _("%(provider)s est connecté (%(account)s).")
            % {"provider": PROVIDERS[provider].title, "account": integration.account_email},
        )
    return redirect("settings_calendars")


@require_POST
def update_settings(request: HttpRequest, provider: str) -> HttpResponse:
    integration = learner_integration(request.user, _provider_or_404(provider))
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
    integration_export_quietly(integration=integration)
    messages.success(request, _("Vos réglages de synchronisation sont enregistrés."))
    return redirect("settings_calendars")


def _ids(values: list[str | None]) -> set[int]:
    return {int(v) for v in values if v and v.isdigit()}


@require_POST
def refresh_calendars(request: HttpRequest, provider: str) -> HttpResponse:
    integration = learner_integration(request.user, _provider_or_404(provider))
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
def export_formation(request: HttpRequest, provider: str, pk: int) -> HttpResponse:
    """The formation page's "Ajouter à mon agenda …": one formation, right away."""
    integration = learner_integration(request.user, _provider_or_404(provider))
    formation = get_object_or_404(Formation.objects.for_learner(request.user), pk=pk)
    label = provider.capitalize()
    try:
        result = formation_export(integration=integration, formation=formation)
    except ExportRefused as refused:
        messages.error(request, refused.message)
    except ReconnectRequired:
        messages.error(request, _("L'accès à ce calendrier a été retiré : reconnectez-le."))
    except ProviderError:
        messages.error(
            request,
            _("Votre agenda %(provider)s n'a pas répondu. Réessayez dans un instant.")
            % {"provider": label},
        )
    else:
        if result.event_ids.get(str(formation.uid)):
            messages.success(
                request,
                _("La formation est dans votre agenda %(provider)s.") % {"provider": label},
            )
        else:
            messages.warning(
                request,
                _("L'ajout à votre agenda %(provider)s n'a pas encore abouti ; il sera repris "
                  "automatiquement.") % {"provider": label},
            )  # fmt: skip
    return redirect(formation)


@require_POST
def disconnect(request: HttpRequest, provider: str) -> HttpResponse:
    integration = learner_integration(request.user, _provider_or_404(provider))
    integration_disconnect(
        integration=integration, remove_exported=request.POST.get("remove_exported") == "on"
    )
    messages.success(
        request,
        _("%(provider)s est déconnecté : ses identifiants sont effacés.")
        % {"provider": PROVIDERS[provider].title},
    )
    return redirect("settings_calendars")
