"""The Celery application: `celery -A config worker` and `celery -A config beat`.

Settings come from Django's (the CELERY_ names in config/settings.py). Without
CELERY_BROKER_URL tasks run inline, in the process that sends them.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config", include=["calendars.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
