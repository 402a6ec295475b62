"""Outlook calendars imported before occurrences of recurring series were completed from their
master hold those occurrences without a title, a place or their all-day flag: their sync state
is dropped so that the next sync lists them whole again (rows it finds unchanged stay; the
others are brought up to date)."""

from django.db import migrations


def relist_outlook_calendars(apps, schema_editor):
    Calendar = apps.get_model("calendars", "Calendar")
    Calendar.objects.filter(integration__provider="outlook").update(sync_token="", resume_from="")


class Migration(migrations.Migration):
    dependencies = [("calendars", "0005_sync_runs_and_push_channels")]

    operations = [
        migrations.RunPython(relist_outlook_calendars, migrations.RunPython.noop, elidable=True)
    ]
