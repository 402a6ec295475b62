"""The Celery application: `celery -A config worker` and `celery -A config beat`.

Settings come from Django's (the CELERY_ names in config/settings.py). Without
CELERY_BROKER_URL tasks run inline, in the process that sends them.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config", include=["accounts.tasks", "calendars.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(sender: Task, **_kwargs: Any) -> None:
    """Before and after each task in a worker, what Django does around each request: a
    database connection older than CONN_MAX_AGE, broken, or left inside a transaction is
    closed; the others are kept (checked at their next use with CONN_HEALTH_CHECKS). Celery's
    own closing is turned off (CELERY_DB_REUSE_MAX). A task run inline belongs to the request
    or command that runs it, which owns the connection."""
    if not getattr(sender.request, "is_eager", False):
        close_old_connections()
