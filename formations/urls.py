from __future__ import annotations

from django.urls import path

from formations import views

app_name = "formations"
urlpatterns = [
    path("", views.formation_list, name="list"),
    path("<int:pk>/", views.formation_detail, name="detail"),
    path("<int:pk>/ics", views.formation_ics, name="ics"),
    # slug: exactly the alphabet of secrets.token_urlsafe().
    path("feed/<slug:token>.ics", views.feed_ics, name="feed"),
    path("feed/regenerate", views.feed_regenerate, name="feed_regenerate"),
]
