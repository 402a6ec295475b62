from __future__ import annotations

from calendars.management.commands.sync_calendars import Command as SyncCommand
from calendars.models import SyncRun


class Command(SyncCommand):
    help = (
        "Imports the calendars of every learner (or of --user), for both providers (or "
        "--provider). Safe to run while the site and other imports run; each run is recorded "
        "in the sync history. Exits with status 1 when any integration failed."
    )
    direction = SyncRun.Direction.IMPORT
