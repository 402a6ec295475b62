from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from calendars.agenda import (
    VIEWS,
    agenda_items,
    calendar_stamp,
    days_of,
    parse_day,
    period_of,
    sources,
)
from calendars.forms import IntegrationSettingsForm
from calendars.models import CalendarIntegration, FormationExport, PushChannel, SyncRun
from calendars.providers import PROVIDERS
from calendars.providers.base import ProviderError, ReconnectRequired
from calendars.push import channel_check
from calendars.services import (
    ConnectError,
    integration_choose_calendars,
    integration_connect_finish,
    integration_connect_start,
    integration_disconnect,
    integration_refresh_calendars,
    integration_update_settings,
)
from calendars.sync import ExportRefused, formation_export
from calendars.tasks import dispatch_push_sync, dispatch_sync, dispatch_watch, run_now
from formations.models import Formation

logger = logging.getLogger(__name__)


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
        "version": calendar_stamp(request.user),
        "refresh_ms": int(settings.CALENDAR_PAGE_REFRESH * 1000),
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


@require_GET
@never_cache
def calendar_version(request: HttpRequest) -> JsonResponse:
    """A stamp that changes when what the calendar page shows may have changed: the page's
    script asks for it every few seconds and reloads the calendar when it moves. Cheap: three
    aggregate queries on indexed columns."""
    return JsonResponse({"version": calendar_stamp(request.user)})


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
    """The calendar page's "Importer maintenant": every connected calendar, both ways, now."""
    total = {"created": 0, "updated": 0, "deleted": 0}
    problems, busy, imported = [], [], 0
    for integration in (
        CalendarIntegration.objects.filter(user=request.user, import_enabled=True)
        .exclude(status=CalendarIntegration.Status.NEEDS_RECONNECT)
        .defer("credentials")
    ):
        title = PROVIDERS[integration.provider].title
        run = run_now(integration.pk, SyncRun.Trigger.MANUAL)
        if run is None:
            busy.append(title)
        elif isinstance(run.failure, ReconnectRequired):
            pass  # the banner on every page says so
        elif run.failure is not None:
            problems.append(title)
        else:
            imported += 1
            for name in total:
                total[name] += getattr(run, name)
    if problems:
        messages.error(
            request,
            _("L'import de %(providers)s n'a pas abouti. Réessayez dans un instant.")
            % {"providers": ", ".join(problems)},
        )
        return redirect("calendars:calendar")
    if busy:
        messages.info(
            request,
            _("Une synchronisation de %(providers)s est déjà en cours : vos derniers changements "
              "y seront pris en compte.") % {"providers": ", ".join(busy)},
        )  # fmt: skip
    if not imported and not busy:
        messages.warning(
            request,
            _("Aucun agenda à importer : connectez ou reconnectez-en un dans les paramètres."),
        )
        return redirect("calendars:calendar")
    if imported:
        messages.success(
            request,
            _(
                "Import terminé : %(created)d ajouté(s), %(updated)d modifié(s), "
                "%(deleted)d supprimé(s)."
            )
            % total,
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
            "last_run": integrations[name].sync_runs.first() if name in integrations else None,
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
        dispatch_sync(integration.pk, SyncRun.Trigger.CONNECT)
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
    dispatch_sync(integration.pk, SyncRun.Trigger.SETTINGS)
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


# --- push notifications -----------------------------------------------------------------------
# Called by Google and Microsoft, not by people: no session, no CSRF token. A notification
# only says "something changed"; what changed is fetched by the sync it asks for. Anything
# not proven ours (unknown channel, wrong secret) is ignored with a success status, so that
# the provider stops sending it rather than retrying.


@csrf_exempt
@login_not_required
@require_POST
def webhook_google(request: HttpRequest) -> HttpResponse:
    """https://developers.google.com/calendar/api/guides/push#receiving-notifications"""
    channel = channel_check(
        request.headers.get("X-Goog-Channel-ID", ""),
        request.headers.get("X-Goog-Channel-Token", ""),
    )
    if channel is None or request.headers.get("X-Goog-Resource-ID", "") != channel.resource_id:
        logger.info("Google notification for an unknown channel ignored")
        return HttpResponse(status=200)
    # "sync" only announces a new channel; "exists" / "not_exists": something changed.
    if request.headers.get("X-Goog-Resource-State") != "sync":
        dispatch_push_sync(channel.integration_id)
    return HttpResponse(status=200)


# Graph's validation tokens are short; anything longer is not one.
VALIDATION_TOKEN_MAX = 1024
# Notifications read from one POST at most (Graph sends up to 100 or so).
NOTIFICATIONS_MAX = 1000


@csrf_exempt
@login_not_required
@require_POST
def webhook_outlook(request: HttpRequest) -> HttpResponse:
    """Change and lifecycle notifications of our Graph subscriptions.
    https://learn.microsoft.com/graph/change-notifications-delivery-webhooks and
    https://learn.microsoft.com/graph/change-notifications-lifecycle-events"""
    token = request.GET.get("validationToken")
    if token is not None:  # the handshake of a new subscription: echo the token, as text
        if len(token) > VALIDATION_TOKEN_MAX:
            return HttpResponse(status=400)
        return HttpResponse(token, content_type="text/plain; charset=utf-8")
    try:
        items = json.loads(request.body)["value"]
        if not isinstance(items, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return HttpResponse(status=400)
    for item in items[:NOTIFICATIONS_MAX]:
        if not isinstance(item, dict):
            continue
        channel = channel_check(
            str(item.get("subscriptionId") or ""), str(item.get("clientState") or "")
        )
        if channel is None:
            logger.info("Graph notification for an unknown subscription ignored")
            continue
        lifecycle = item.get("lifecycleEvent")
        if lifecycle == "reauthorizationRequired":
            # Renewing the subscription reauthorizes it.
            PushChannel.objects.filter(pk=channel.pk).update(expires_at=timezone.now())
            dispatch_watch(channel.integration_id)
        elif lifecycle == "subscriptionRemoved":
            channel.delete()
            dispatch_watch(channel.integration_id)
            dispatch_push_sync(channel.integration_id)  # changes since are not notified
        else:  # a change, or "missed": notifications were lost, the delta has it all
            dispatch_push_sync(channel.integration_id)
    return HttpResponse(status=202)
