from __future__ import annotations

from django.urls import path

from calendars import conflict_views, views, webhooks

app_name = "calendars"
urlpatterns = [
    path("", views.calendar_page, name="calendar"),
    path("event/<str:key>/", views.event_detail, name="event"),
    path("import/", views.import_now, name="import_now"),
    path("shown/", views.show_calendars, name="show_calendars"),
    path("version", views.calendar_version, name="version"),
    path("connect/<str:provider>/", views.connect, name="connect"),
    path("connect/<str:provider>/password", views.connect_password, name="connect_password"),
    path("export/<str:provider>/<int:pk>/", views.export_formation, name="export_formation"),
    path(
        "conflicts/<int:formation>/<int:event>/dismiss",
        conflict_views.dismiss_conflict,
        name="dismiss_conflict",
    ),
    path(
        "conflicts/<int:formation>/<int:event>/restore",
        conflict_views.restore_conflict,
        name="restore_conflict",
    ),
    # The paths the product already registers with Google and Microsoft (no trailing slash).
    path("callback/<str:provider>", views.callback, name="callback"),
    path("webhooks/google", webhooks.webhook_google, name="webhook_google"),
    path("webhooks/outlook", webhooks.webhook_outlook, name="webhook_outlook"),
]
