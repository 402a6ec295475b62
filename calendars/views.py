from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from calendars.agenda import (
    FORMATION,
    VIEWS,
    agenda_item,
    agenda_items,
    calendar_stamp,
    day_start,
    days_of,
    parse_day,
    period_of,
    sources,
)
from calendars.availability import dismissed_conflicts_between
from calendars.errors import ProviderError, ReconnectRequired, Refused
from calendars.failures import failure_of
from calendars.forms import CalDAVConnectForm, IntegrationSettingsForm
from calendars.layout import clashes, mark_conflicts, time_grid
from calendars.models import CalendarIntegration, SyncRun
from calendars.providers.names import PROVIDERS
from calendars.selectors import (
    calendars_on_page,
    formations_in_calendars,
    integration_formations_in_calendar,
    integrations_sync_state,
    learner_integration,
)
from calendars.services.connection import (
    calendars_show,
    integration_choose_calendars,
    integration_connect_finish,
    integration_connect_password,
    integration_connect_start,
    integration_redirect_uri,
    integration_refresh_calendars,
    integration_update_settings,
)
from calendars.services.faults import provider_faults
from calendars.services.lifecycle import (
    integration_disconnect,
    integration_disconnect_plan,
    integration_formations_withdraw,
)
from calendars.sync.runs import REQUEST_STALE_AFTER, formation_export
from calendars.tasks import dispatch_in_background, dispatch_sync
from formations.models import Formation

logger = logging.getLogger(__name__)


@require_GET
def calendar_page(request: HttpRequest) -> HttpResponse:
    """The learner's formations and imported events by month, week, day or 30-day agenda, in
    their time zone. `?view=` and `?date=` choose; anything else shows this month."""
    now = timezone.localtime()
    today = now.date()
    view = request.GET.get("view")
    period = period_of(
        view if view in VIEWS else "month", parse_day(request.GET.get("date")) or today
    )
    items = agenda_items(user=request.user, start=period.start, end=period.end, shown_only=True)
    # Conflicts among the items shown: those with a hidden calendar's events are not marked
    # here (the formation's page counts them).
    zone = timezone.get_current_timezone()
    dismissed = dismissed_conflicts_between(
        user=request.user, start=day_start(period.start, zone), end=day_start(period.end, zone)
    )
    items = mark_conflicts(items, clashes(items), dismissed)
    days = days_of(items, period.start, period.end)
    timed = period.view in ("week", "day")
    state = integrations_sync_state(
        user=request.user, requested_since=timezone.now() - REQUEST_STALE_AFTER
    )
    calendars = calendars_on_page(user=request.user)
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
        "has_conflicts": any(item.conflicts for item in items),
        "grid": time_grid(items, period.start, period.end, now) if timed else None,
        "hours": [f"{hour:02}:00" for hour in range(24)],
        # What an event's details keep, to come back to the same view and date.
        "period_query": urlencode({"view": period.view, "date": period.day.isoformat()}),
        # The legend: formations, and the providers connected (each calendar is listed
        # under its provider, to show or hide).
        "sources": [s for s in sources() if s.name == FORMATION or s.name in state],
        "calendars": calendars,
        "import_now_url": import_now_url,
        "has_integrations": bool(state),
        "syncs": [
            {"name": name, "title": PROVIDERS[name].title, "state": state[name]}
            for name in sorted(state)
        ],
        "syncing": any(s.syncing for s in state.values()),
        # base.html's banner (calendars.context_processors.calendar_alerts) from the sync
        # states, rather than a query of its own: it names each integration's provider.
        "integrations_unavailable": [
            CalendarIntegration(provider=name) for name in sorted(state) if state[name].unavailable
        ],
    }
    return render(request, "calendars/calendar.html", context)


@require_GET
def event_detail(request: HttpRequest, key: str) -> HttpResponse:
    """One item of the learner's calendar: when, where, which calendar, their answer, and a
    link to it at its provider or to the formation's page. A page of its own (the calendar's
    links lead here without JavaScript); the calendar page's script asks for the panel alone,
    with the X-Calendar-Panel header, and shows it in place."""
    item = agenda_item(user=request.user, key=key)
    if item is None:  # someone else's, not shown in the calendar, or no such key
        raise Http404
    if request.headers.get("X-Calendar-Panel") == "1":
        # The panel alone: none of the page's context processors (nor their queries).
        response = HttpResponse(
            render_to_string("calendars/_event_details.html", {"item": item, "panel": True})
        )
    else:
        context = {"item": item, "back": _calendar_back(request.GET)}
        response = render(request, "calendars/event.html", context)
    patch_vary_headers(response, ["X-Calendar-Panel"])
    return response


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


@require_POST
def import_now(request: HttpRequest) -> HttpResponse:
    """ "Synchroniser maintenant" (and "Réessayer"): a sync, both ways, of every connected
    calendar or of one (`provider`), sent to run in the background. The answer is immediate:
    back on the calendar page, on the same view and date, which updates itself when the run
    ends, or on the settings page's card (`back=settings`)."""
    provider = request.POST.get("provider")
    back = _settings_back(provider) if request.POST.get("back") == "settings" else None
    back = back or _calendar_back(request.POST)
    integrations = (
        CalendarIntegration.objects.filter(user=request.user)
        .exclude(status=CalendarIntegration.Status.NEEDS_RECONNECT)
        .defer("credentials")
    )
    if provider:
        integrations = integrations.filter(provider=provider)
    integrations = list(integrations)
    if not integrations:
        messages.warning(
            request,
            _("Aucun agenda à synchroniser : connectez ou reconnectez-en un dans les "
              "paramètres."),
        )  # fmt: skip
        return redirect(back)
    started, running = [], []
    for integration in integrations:
        title = PROVIDERS[integration.provider].title
        sent = dispatch_in_background(integration.pk, SyncRun.Trigger.MANUAL)
        (started if sent else running).append(title)
    if started:
        messages.info(
            request,
            _("Synchronisation de %(providers)s lancée : le calendrier se met à jour dès "
              "qu'elle se termine.") % {"providers": ", ".join(started)},
        )  # fmt: skip
    if running:
        messages.info(
            request,
            _("Une synchronisation de %(providers)s est déjà en cours : vos derniers changements "
              "y seront pris en compte.") % {"providers": ", ".join(running)},
        )  # fmt: skip
    return redirect(back)


@require_POST
def show_calendars(request: HttpRequest) -> HttpResponse:
    """The calendar page's "Calendriers affichés": the calendars ticked are shown, the others
    hidden (remembered), and the learner is back on the same view and date."""
    calendars_show(user=request.user, shown=_ids(request.POST.getlist("shown")))
    return redirect(_calendar_back(request.POST))


def _settings_back(provider: str | None) -> str:
    """The settings page, on the provider's card when it is one."""
    url = reverse("settings_calendars")
    return f"{url}#integration-{provider}" if provider in PROVIDERS else url


def _calendar_back(data: Any) -> str:
    """The calendar page on the view and date the learner was on (checked: anything else is
    the default view)."""
    query = {}
    if data.get("view") in VIEWS:
        query["view"] = data["view"]
    day = parse_day(data.get("date"))
    if day is not None:
        query["date"] = day.isoformat()
    url = reverse("calendars:calendar")
    return f"{url}?{urlencode(query)}" if query else url


@never_cache  # it shows the private feed address
@require_GET
def settings_calendars(request: HttpRequest) -> HttpResponse:
    return _settings_page(request)


def _settings_page(
    request: HttpRequest, *, connect_forms: dict[str, CalDAVConnectForm] | None = None
) -> HttpResponse:
    """The Calendriers settings page; `connect_forms`: a password form sent back with its
    errors (answered 400)."""
    connect_forms = connect_forms or {}
    integrations = {
        i.provider: i
        # Never decrypted to list them: a credential no key reads must not lock the page.
        for i in CalendarIntegration.objects.filter(user=request.user)
        .defer("credentials")
        .prefetch_related("calendars")
    }
    exported = formations_in_calendars(user=request.user)
    provider_faults()  # those of credentials no longer configured are lifted first
    states = integrations_sync_state(
        user=request.user, requested_since=timezone.now() - REQUEST_STALE_AFTER
    )
    cards = [
        {
            "name": name,
            "provider": provider,
            "integration": integrations.get(name),
            "form": IntegrationSettingsForm.for_integration(integrations.get(name)),
            "exported": exported.get(name, 0),
            "target": _export_target(integrations.get(name)),
            "last_run": integrations[name].sync_runs.first() if name in integrations else None,
            "sync": states.get(name),
            "connect_form": connect_forms.get(name) or _connect_form(provider, integrations),
        }
        for name, provider in PROVIDERS.items()
    ]
    context = {"cards": cards, "tab": "calendars", "poll_minutes": _poll_minutes()}
    return render(request, "calendars/settings.html", context, status=400 if connect_forms else 200)


def _connect_form(provider: Any, integrations: dict[str, Any]) -> CalDAVConnectForm | None:
    """A blank password form where one is shown: a provider connected with a password, not
    connected yet or asking for a new one."""
    if provider.connection != "password":
        return None
    integration = integrations.get(provider.name)
    if integration is not None and not integration.needs_reconnect:
        return None
    initial = {"username": integration.account_email} if integration else None
    return CalDAVConnectForm(initial=initial, demo_url=settings.CALDAV_DEMO_URL)


def _poll_minutes() -> int:
    return max(1, round(settings.CALENDAR_SYNC_INTERVAL / 60))


@require_POST
def connect_password(request: HttpRequest, provider: str) -> HttpResponse:
    """A CalDAV account's form: checked with the server at once; connected, its first sync is
    sent; refused, the form comes back with why (the password never shown again)."""
    provider = _provider_or_404(provider)
    if PROVIDERS[provider].connection != "password":
        raise Http404
    form = CalDAVConnectForm(request.POST, demo_url=settings.CALDAV_DEMO_URL)
    if form.is_valid():
        try:
            integration = integration_connect_password(
                user=request.user,
                provider_name=provider,
                url=form.cleaned_data["url"],
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
            )
        except Refused as error:
            form.add_error(None, str(error.message))
        else:
            return _connected(request, integration)
    return _settings_page(request, connect_forms={provider: form})


def _export_target(integration: CalendarIntegration | None) -> Any:
    """The calendar that receives the formations, from the prefetched ones."""
    if integration is None:
        return None
    return next((c for c in integration.calendars.all() if c.is_export_target), None)


@require_POST
def connect(request: HttpRequest, provider: str) -> HttpResponse:
    provider = _provider_or_404(provider)
    if PROVIDERS[provider].connection == "password":  # its form is on the settings page
        return redirect(reverse("settings_calendars") + f"#integration-{provider}")
    existing = CalendarIntegration.objects.filter(user=request.user, provider=provider).first()
    try:
        url = integration_connect_start(
            user=request.user,
            provider_name=provider,
            redirect_uri=integration_redirect_uri(
                provider_name=provider, absolute=request.build_absolute_uri
            ),
            login_hint=existing.account_email if existing else "",
            # The banner's "allow the calendar list": that permission alone is asked for.
            missing_only=bool(
                request.POST.get("missing") and existing is not None and existing.missing_permission
            ),
        )
    except Refused as error:
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
    except Refused as error:
        messages.error(request, error.message)
    else:
        if integration.missing_permission:  # the page's banner says what and offers to ask
            return redirect("settings_calendars")
        return _connected(request, integration)
    return redirect("settings_calendars")


def _connected(request: HttpRequest, integration: CalendarIntegration) -> HttpResponse:
    """A connection made (by either way in): its first sync sent, and said."""
    dispatch_sync(integration.pk, SyncRun.Trigger.CONNECT)
    messages.success(
        request,
        _("%(provider)s est connecté (%(account)s).")
        % {
            "provider": PROVIDERS[integration.provider].title,
            "account": integration.account_email,
        },
    )
    return redirect("settings_calendars")


@require_POST
def update_settings(request: HttpRequest, provider: str) -> HttpResponse:
    integration = learner_integration(request.user, _provider_or_404(provider))
    form = IntegrationSettingsForm(request.POST, prefix=integration.provider)
    if not form.is_valid():
        return redirect("settings_calendars")
    was_adding = integration.export_enabled
    integration_update_settings(integration=integration, **form.cleaned_data)
    if integration.calendars.exists():
        try:
            integration_choose_calendars(
                integration=integration,
                imported=_ids(request.POST.getlist(f"{provider}-import_calendars")),
                export_target=next(iter(_ids([request.POST.get(f"{provider}-export_calendar")])),
                                   None),
            )  # fmt: skip
        except Refused as refused:
            messages.error(request, refused.message)
            return redirect("settings_calendars")
    dispatch_sync(integration.pk, SyncRun.Trigger.SETTINGS)
    messages.success(request, _("Vos réglages de synchronisation sont enregistrés."))
    if (
        was_adding
        and not integration.export_enabled
        and integration_formations_in_calendar(integration=integration)
    ):
        # Those already in the calendar stay unless the learner says otherwise: ask.
        return redirect("settings_calendar_withdraw", provider)
    return redirect("settings_calendars")


@require_http_methods(["GET", "POST"])
def withdraw_formations(request: HttpRequest, provider: str) -> HttpResponse:
    """After "Ajouter mes formations" is turned off: those already in the learner's calendar
    can be taken out (POST) or left there, kept up to date (the page's other link)."""
    integration = learner_integration(request.user, _provider_or_404(provider))
    title = PROVIDERS[provider].title
    if request.method == "GET":
        count = integration_formations_in_calendar(integration=integration)
        if not count:
            return redirect("settings_calendars")
        context = {
            "integration": integration,
            "provider": provider,
            "title": title,
            "count": count,
            "tab": "calendars",
        }
        return render(request, "calendars/withdraw.html", context)
    try:
        done = integration_formations_withdraw(integration=integration)
    except ReconnectRequired as error:
        messages.error(request, failure_of(error).message)
        return redirect("settings_calendars")
    if done.busy:
        messages.warning(
            request,
            _("Une synchronisation de %(provider)s est en cours : réessayez dans un instant.")
            % {"provider": title},
        )
        return redirect("settings_calendar_withdraw", provider)
    if done.removed:
        messages.success(
            request,
            ngettext(
                "%(count)d formation est retirée de votre agenda %(provider)s.",
                "%(count)d formations sont retirées de votre agenda %(provider)s.",
                done.removed,
            )
            % {"count": done.removed, "provider": title},
        )
    if done.left:
        messages.warning(
            request,
            ngettext(
                "%(count)d formation n'a pas pu être retirée de votre agenda %(provider)s : "
                "réessayez plus tard.",
                "%(count)d formations n'ont pas pu être retirées de votre agenda %(provider)s : "
                "réessayez plus tard.",
                done.left,
            )
            % {"count": done.left, "provider": title},
        )
    return redirect("settings_calendars")


def _ids(values: list[str | None]) -> set[int]:
    return {int(v) for v in values if v and v.isdigit()}


@require_POST
def refresh_calendars(request: HttpRequest, provider: str) -> HttpResponse:
    integration = learner_integration(request.user, _provider_or_404(provider))
    try:
        integration_refresh_calendars(integration=integration)
    except ProviderError as error:
        messages.error(request, failure_of(error).message)
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
    except Refused as refused:
        messages.error(request, refused.message)
    except ProviderError as error:
        messages.error(request, failure_of(error).message)
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


@require_http_methods(["GET", "POST"])
def disconnect(request: HttpRequest, provider: str) -> HttpResponse:
    """GET: what disconnecting will do, to confirm (a page, so that it works without
    JavaScript). POST: done, and said."""
    integration = learner_integration(request.user, _provider_or_404(provider))
    title = PROVIDERS[provider].title
    if request.method == "GET":
        exported, events = integration_disconnect_plan(integration=integration)
        context = {
            "integration": integration,
            "provider": provider,
            "title": title,
            "exported": exported,
            "events": events,
            "tab": "calendars",
        }
        return render(request, "calendars/disconnect.html", context)
    done = integration_disconnect(
        integration=integration, remove_exported=request.POST.get("remove_exported") == "on"
    )
    parts = [_("ses identifiants sont effacés")]
    if done.revoked:
        parts.append(_("l'accès est retiré chez %(provider)s") % {"provider": title})
    counted = [
        (done.forgotten, ngettext(
            "%(count)d événement importé est effacé d'ici",
            "%(count)d événements importés sont effacés d'ici",
            done.forgotten,
        )),
        (done.removed, ngettext(
            "%(count)d formation est retirée de votre agenda",
            "%(count)d formations sont retirées de votre agenda",
            done.removed,
        )),
        (done.left, ngettext(
            "%(count)d formation reste dans votre agenda, sans plus être tenue à jour",
            "%(count)d formations restent dans votre agenda, sans plus être tenues à jour",
            done.left,
        )),
    ]  # fmt: skip
    parts += [text % {"count": count} for count, text in counted if count]
    messages.success(
        request,
        _("%(provider)s est déconnecté : %(what)s.")
        % {"provider": title, "what": " ; ".join(parts)},
    )
    return redirect("settings_calendars")
