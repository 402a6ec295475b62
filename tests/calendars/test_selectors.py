"""The reads shared by pages, tasks and commands: what they return, not how they ask."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Profile
from calendars.models import Calendar, FormationExport, ProviderFault, PushChannel, SyncRun
from calendars.selectors import (
    _integrations_for_sync,
    integration_calendars,
    integration_exports_for_sync,
    integration_for_sync,
)


def _instance_state(integration):
    """The instance's values and annotations, the calendars read with it apart."""
    values = dict(vars(integration))
    for name in ("_state", "_prefetched_objects_cache", "_sync_calendars"):
        values.pop(name, None)
    return values


@pytest.fixture
def integration_with_everything(learner, make_calendar, make_formation):
    """An integration for which every annotation of the sync's read has a value to find."""
    primary = make_calendar(learner)
    make_calendar(learner, external_id="team", name="Équipe")
    integration = primary.integration
    integration.set_credentials({"access_token": "at-1", "refresh_token": "rt-1"})
    integration.token_expires_at = timezone.now() + timedelta(minutes=40)
    integration.last_synced_at = timezone.now() - timedelta(hours=1)
    integration.save()
    Profile.objects.update_or_create(user=learner, defaults={"language": "en"})
    formations = [make_formation(learners=(learner,)) for _ in range(2)]
    FormationExport.objects.create(
        integration=integration,
        formation=formations[0],
        formation_uid=formations[0].uid,
        calendar_external_id="primary",
    )
    SyncRun.objects.create(integration=integration, trigger="periodic", direction="both")
    ProviderFault.objects.create(
        provider=integration.provider, detail="refused", probe_at=timezone.now()
    )
    soon = timezone.now() + timedelta(hours=2)
    PushChannel.objects.create(
        integration=integration, channel_id="ch-1", secret_digest="x", expires_at=soon
    )
    PushChannel.objects.create(
        integration=integration,
        calendar=primary,
        channel_id="ch-2",
        secret_digest="y",
        expires_at=soon + timedelta(hours=1),
    )
    return integration


def test_integration_for_sync_reads_what_its_queryset_reads(
    integration_with_everything, django_assert_num_queries
):
    integration = integration_with_everything
    expected = _integrations_for_sync().filter(pk=integration.pk).first()

    read = integration_for_sync(integration.pk)

    assert _instance_state(read) == _instance_state(expected)
    # Converted as the queryset converts them, on every database.
    assert {name: type(value) for name, value in _instance_state(read).items()} == {
        name: type(value) for name, value in _instance_state(expected).items()
    }
    assert read.get_credentials() == {"access_token": "at-1", "refresh_token": "rt-1"}
    assert (read.open_run, read.has_exports, read.provider_fault, read.mailbox_watched) == (
        True, True, True, True,
    )  # fmt: skip
    assert (read.profile_language, read.formations_enrolled, read.channel_count) == ("en", 2, 2)
    assert isinstance(read.channels_renew_by, datetime)
    assert timezone.is_aware(read.channels_renew_by)
    assert read._state.adding is False
    assert read._state.db == "default"
    with django_assert_num_queries(0):  # read with it, each knowing its integration
        calendars = integration_calendars(read)
        assert all(calendar.integration is read for calendar in calendars)
    assert {c.external_id: c.watched for c in calendars} == {"primary": True, "team": False}
    expected_calendars = list(
        Calendar.objects.filter(integration=integration).annotate(
            watched=Exists(PushChannel.objects.filter(calendar=OuterRef("pk")))
        )
    )
    assert [_instance_state(c) for c in calendars] == [
        _instance_state(c) for c in expected_calendars
    ]


def test_integration_for_sync_reads_each_integration_by_its_own_id(
    integration_with_everything, make_user, make_calendar
):
    other = make_calendar(make_user(), provider="outlook").integration
    first = integration_with_everything

    assert integration_for_sync(first.pk).pk == first.pk
    read = integration_for_sync(other.pk)
    assert (read.pk, read.provider, read.open_run, read.formations_enrolled) == (
        other.pk, "outlook", False, 0,
    )  # fmt: skip
    assert integration_for_sync(first.pk).user_id == first.user_id


def test_integration_for_sync_finds_no_integration_that_is_gone(integration_with_everything):
    missing = integration_with_everything.pk + 1000

    assert integration_for_sync(missing) is None


@pytest.mark.django_db(transaction=True)
def test_integration_for_sync_reads_from_another_thread(learner, make_calendar):
    """A background sync runs in a thread of its own, with its own database connection."""
    integration = make_calendar(learner).integration
    integration_for_sync(integration.pk)  # compiled for this thread's connection first
    found = []

    def read() -> None:
        try:
            found.append(integration_for_sync(integration.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()

    assert [i.pk for i in found] == [integration.pk]


def test_integration_exports_for_sync_reads_each_row_with_its_formation(
    learner, make_user, make_calendar, make_formation, django_assert_num_queries
):
    integration = make_calendar(learner).integration
    enrolled, left, deleted = (make_formation(learners=(learner,)) for _ in range(3))
    for formation in (enrolled, left, deleted):
        FormationExport.objects.create(
            integration=integration,
            formation=formation,
            formation_uid=formation.uid,
            calendar_external_id="primary",
            create_sent=True,
        )
    left.enrollments.all().delete()
    deleted.delete()
    someone_else = make_calendar(make_user(), provider="outlook").integration
    FormationExport.objects.create(
        integration=someone_else,
        formation=left,
        formation_uid=left.uid,
        calendar_external_id="primary",
    )

    with django_assert_num_queries(1):
        rows = integration_exports_for_sync(integration)
        by_uid = {row.formation_uid: row for row in rows}
        assert all(row.integration is integration for row in rows)
        assert {uid: (row.formation, row.enrolled) for uid, row in by_uid.items()} == {
            enrolled.uid: (enrolled, True),
            left.uid: (left, False),
            deleted.uid: (None, False),
        }
        assert by_uid[enrolled.uid].formation.title == enrolled.title
    expected = FormationExport.objects.filter(integration=integration)
    assert [_instance_state(row) for row in rows] == [
        {**_instance_state(row), "enrolled": row.formation_uid == enrolled.uid} for row in expected
    ]
