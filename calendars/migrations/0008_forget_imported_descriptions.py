"""Imported events' descriptions are shown nowhere: those stored before are forgotten."""

from django.db import migrations


def forget_descriptions(apps, schema_editor):
    CalendarEvent = apps.get_model("calendars", "CalendarEvent")
    CalendarEvent.objects.exclude(description="").update(description="")


class Migration(migrations.Migration):
    dependencies = [("calendars", "0007_calendar_listing_window")]

    operations = [
        migrations.RunPython(forget_descriptions, migrations.RunPython.noop, elidable=True)
    ]
