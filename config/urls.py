from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from accounts import views as accounts_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="formations:list"), name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("accounts/social/", include("social_django.urls", namespace="social")),
    path("settings/", accounts_views.settings_profile, name="settings"),
    path("language/", accounts_views.set_language, name="set_language"),
    path("formations/", include("formations.urls")),
    path("calendar/", include("calendars.urls")),
    path("admin/", admin.site.urls),
    path("healthz", accounts_views.healthz, name="healthz"),
]
