from __future__ import annotations

from django.urls import path

from formations import views

app_name = "formations"
urlpatterns = [
    path("", views.formation_list, name="list"),
    path("<int:pk>/", views.formation_detail, name="detail"),
    path("<int:pk>/ics", views.formation_ics, name="ics"),
]
