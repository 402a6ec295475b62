from __future__ import annotations

from django.urls import path

from calendars import views

app_name = "calendars"
urlpatterns = [
    path("", views.calendar_page, name="calendar"),
]
