"""`/readyz`: ready when the database and the configured broker answer, 503 naming what does
not, and nothing of their addresses or credentials; `/healthz` touches neither."""

from __future__ import annotations

import socket

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core import readiness


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens on it once closed


def test_ready_without_a_broker_when_the_database_answers(client, db, settings):
    settings.CELERY_BROKER_URL = ""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("readyz"))
    assert response.status_code == 200
    assert response.text == "ok"
    assert len(queries.captured_queries) == 1  # the database was asked
    assert "no-cache" in response["Cache-Control"]


def test_not_ready_when_the_database_does_not_answer(client, db, monkeypatch):
    class Unreachable:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr(readiness, "connection", Unreachable())
    response = client.get(reverse("readyz"))
    assert response.status_code == 503
    assert response.text == "not ready: database"


def test_not_ready_when_the_broker_does_not_answer_and_its_secret_is_not_said(
    client, db, settings, caplog
):
    settings.CELERY_BROKER_URL = f"redis://:broker-s3cret@127.0.0.1:{_closed_port()}/0"

    response = client.get(reverse("readyz"))

    assert response.status_code == 503
    assert response.text == "not ready: broker"
    assert "broker-s3cret" not in response.text
    assert "broker-s3cret" not in caplog.text


@pytest.mark.skipif(
    not __import__("os").environ.get("CI"),
    reason="needs the Redis that .ci/run starts (CI=true); without it the broker check has "
    "nothing to reach",
)
def test_ready_when_the_broker_answers(client, db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    assert client.get(reverse("readyz")).status_code == 200


def test_healthz_touches_no_service(client, db, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert not queries.captured_queries
