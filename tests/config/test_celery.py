"""The Celery application's set-up, as a worker runs it."""

from __future__ import annotations

import time

import pytest
from celery.fixups.django import DjangoWorkerFixup
from celery.signals import task_postrun, task_prerun
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from calendars.tasks import prune_history, sync_integration
from config.celery import app

pytestmark = pytest.mark.django_db(transaction=True)  # a worker's connection is in autocommit


def _connection():
    return connections[DEFAULT_DB_ALIAS]  # this thread's, itself (not the proxy)


def _task_in_a_worker() -> None:
    """What a worker does around a task, Celery's Django fix-up included (a task sent to a
    worker, not run inline: its request is not eager)."""
    fixup = DjangoWorkerFixup(app)
    fixup.on_task_prerun(sender=sync_integration)
    task_prerun.send(sender=sync_integration, task_id="t", task=sync_integration)
    _connection().ensure_connection()  # the task's queries
    fixup.on_task_postrun(sender=sync_integration)
    task_postrun.send(sender=sync_integration, task_id="t", task=sync_integration)


@pytest.fixture
def closed(monkeypatch):
    """How many times the connection was closed (an in-memory SQLite database is never
    really closed: the calls are what tells)."""
    calls = []
    close = _connection().close
    monkeypatch.setattr(_connection(), "close", lambda: calls.append(1) or close())
    return calls


def _max_age(monkeypatch, seconds: int) -> None:
    """CONN_MAX_AGE as if the connection had been opened with it."""
    connection = _connection()
    connection.ensure_connection()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", seconds)
    monkeypatch.setattr(connection, "close_at", time.monotonic() + seconds)


def test_a_worker_keeps_its_database_connection_between_tasks(monkeypatch, closed):
    _max_age(monkeypatch, 60)

    for _ in range(3):
        _task_in_a_worker()

    assert closed == []


def test_a_worker_closes_a_connection_as_django_does_after_a_request(monkeypatch, closed):
    _max_age(monkeypatch, 0)  # none kept

    _task_in_a_worker()

    assert closed


def test_a_worker_closes_a_connection_left_inside_a_transaction(monkeypatch, closed):
    _max_age(monkeypatch, 60)
    _connection().set_autocommit(False)
    try:
        _task_in_a_worker()
    finally:
        if _connection().connection is not None:
            _connection().set_autocommit(True)

    assert closed


def test_a_task_run_inline_leaves_the_connection_to_its_caller(monkeypatch, closed):
    """Without a broker a task runs in the request or command that sends it, perhaps inside
    its transaction."""
    _max_age(monkeypatch, 60)

    with transaction.atomic():
        prune_history.apply()

    assert closed == []
