"""What `/readyz` checks: the services a request or a task needs, each with a short timeout.

`/healthz` stays a liveness probe that touches nothing (a database outage must not make an
orchestrator restart every web process); `/readyz` says whether this process can serve now.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

BROKER_TIMEOUT = 2.0  # seconds to reach the broker


def readiness() -> dict[str, bool]:
    """Each check by name, and whether it passed: the database always, the broker when one is
    configured (without one, tasks run in the process)."""
    checks = {"database": _database()}
    if settings.CELERY_BROKER_URL:
        checks["broker"] = _broker(settings.CELERY_BROKER_URL)
    return checks


def _database() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any failure means not ready; the reason goes to the log
        logger.warning("Readiness: the database does not answer", exc_info=True)
        return False
    return True


def _broker(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=BROKER_TIMEOUT) as broker:
            broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
    except Exception as error:
        # Only the exception's type: its text may quote the broker's address and password.
        logger.warning("Readiness: the broker does not answer (%s)", type(error).__name__)
        return False
    return True
