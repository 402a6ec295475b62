from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView

from accounts import views as accounts_views
from calendars import api as calendars_api
from calendars import views as calendars_views


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico whatever the page says: the icon, wherever static files
    are served from (the address is worked out per request: a manifest may name it)."""

    permanent = True

    def get_redirect_url(self, *args: Any, **kwargs: Any) -> str:
        return static("favicon.svg")


# The admin under the site's own name, not Django's.
admin.site.site_header = _("Formations — administration")
admin.site.site_title = _("Formations")
admin.site.index_title = _("Administration")

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="formations:list"), name="home"),
    # Browsers ask for it whatever the page says.
    path("favicon.ico", FaviconView.as_view()),
    path("accounts/", include("django.contrib.auth.urls")),
    path("accounts/social/", include("social_django.urls", namespace="social")),
    path("settings/", accounts_views.settings_profile, name="settings"),
    path("settings/calendars/", calendars_views.settings_calendars, name="settings_calendars"),
    path(
        "settings/calendars/<str:provider>/",
        calendars_views.update_settings,
        name="settings_calendar_update",
    ),
    path(
        "settings/calendars/<str:provider>/refresh",
        calendars_views.refresh_calendars,
        name="settings_calendar_refresh",
    ),
    path(
        "settings/calendars/<str:provider>/withdraw",
        calendars_views.withdraw_formations,
        name="settings_calendar_withdraw",
    ),
    path(
        "settings/calendars/<str:provider>/disconnect",
        calendars_views.disconnect,
        name="settings_calendar_disconnect",
    ),
    path("settings/api/", accounts_views.settings_api, name="settings_api"),
    path("settings/security/", accounts_views.settings_security, name="settings_security"),
    path(
        "settings/api/<int:pk>/revoke/",
        accounts_views.settings_api_revoke,
        name="settings_api_revoke",
    ),
    path("language/", accounts_views.set_language, name="set_language"),
    path("formations/", include("formations.urls")),
    path("calendar/", include("calendars.urls")),
    path("api/", calendars_api.urls()),
    path("admin/", admin.site.urls),
    path("healthz", accounts_views.healthz, name="healthz"),
    path("readyz", accounts_views.readyz, name="readyz"),
]
