from __future__ import annotations

from importlib import import_module

from django.apps import apps
from django.utils import timezone

from calendars.models import Calendar, CalendarEvent

relist = import_module("calendars.migrations.0006_relist_outlook_calendars")


def test_upgrading_lists_outlook_calendars_again_and_leaves_google_ones(learner, make_calendar):
    outlook = make_calendar(learner, provider="outlook", external_id="AAMk-1")
    google = make_calendar(learner, provider="google")
    resuming = make_calendar(learner, provider="outlook", external_id="AAMk-2")
    Calendar.objects.filter(pk__in=[outlook.pk, google.pk]).update(sync_token="delta-or-sync")
    Calendar.objects.filter(pk=resuming.pk).update(resume_from='{"page": "next"}')

    relist.relist_outlook_calendars(apps, None)

    states = dict(Calendar.objects.values_list("pk", "sync_token"))
    assert states == {outlook.pk: "", google.pk: "delta-or-sync", resuming.pk: ""}
    assert Calendar.objects.get(pk=resuming.pk).resume_from == ""


forget = import_module("calendars.migrations.0008_forget_imported_descriptions")


def test_upgrading_forgets_the_descriptions_imported_before(learner, make_calendar):
    calendar = make_calendar(learner)
    CalendarEvent.objects.create(
        calendar=calendar, external_id="e1", title="Dentiste", description="Notes privées",
        start=timezone.now(), end=timezone.now(),
    )  # fmt: skip

    forget.forget_descriptions(apps, None)

    assert CalendarEvent.objects.get(external_id="e1").description == ""
