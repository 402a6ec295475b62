"""The accounts' periodic work, run by Celery beat (config/settings.py CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from accounts.security import security_log_prune


@shared_task(ignore_result=True)
def prune_security_log() -> int:
    """Beat, daily: entries older than SECURITY_LOG_RETENTION_DAYS are forgotten."""
    return security_log_prune()
