"""The admin's "État des fournisseurs": each provider's connections by status, the last hour's
errors by code, whether the application is refused, push channels open and due, and how late
the oldest pending sync is; staff only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from calendars.errors import AppCredentialsRejected
from calendars.health import provider_health
from calendars.models import CalendarIntegration, ProviderFault, PushChannel, SyncRun
from calendars.services.faults import provider_fault_record

HEALTH = "admin:calendars_provider_health"


def _integration(user, provider, **fields):
    return CalendarIntegration.objects.create(user=user, provider=provider, credentials="{}",
                                              **fields)  # fmt: skip


@pytest.fixture
def situation(make_user):
    now = timezone.now()
    learners = [make_user() for _ in range(4)]
    google = _integration(learners[0], "google", next_sync_at=now - timedelta(minutes=7))
    _integration(learners[1], "google", status=CalendarIntegration.Status.NEEDS_RECONNECT)
    outlook = _integration(learners[2], "outlook", next_sync_at=now + timedelta(minutes=5))
    _integration(learners[3], "outlook", status=CalendarIntegration.Status.ERROR,
                 next_sync_at=now - timedelta(hours=3), sync_enabled=False)  # fmt: skip
    for code, age in [
        ("rate_limited", 10),
        ("rate_limited", 20),
        ("grant_revoked", 5),
        ("rate_limited", 90),
    ]:  # the last is older than the hour
        SyncRun.objects.create(
            integration=google, trigger="periodic", direction="both",
            started_at=now - timedelta(minutes=age), error_code=code,
        )  # fmt: skip
    for hours in (1, 72):
        PushChannel.objects.create(integration=outlook, channel_id=f"c{hours}", secret_digest="x",
                                   expires_at=now + timedelta(hours=hours))  # fmt: skip
    PushChannel.objects.create(integration=outlook, channel_id="gone", secret_digest="x",
                               expires_at=now - timedelta(hours=1))  # fmt: skip
    expired = AppCredentialsRejected("invalid_client: secret expired")
    provider_fault_record(provider="outlook", error=expired)
    return now


def test_the_figures_of_each_provider(situation):
    health = {item.provider: item for item in provider_health(situation)}
    google, outlook = health["google"], health["outlook"]

    assert google.by_status == {"connected": 1, "needs_reconnect": 1, "error": 0}
    assert outlook.by_status == {"connected": 1, "needs_reconnect": 0, "error": 1}
    assert [(code, count) for code, _meaning, count in google.errors] == [
        ("rate_limited", 2),
        ("grant_revoked", 1),
    ]
    assert outlook.errors == []
    assert google.fault is None
    assert "invalid_client" in outlook.fault.detail
    assert (outlook.channels_open, outlook.channels_due) == (2, 1)
    assert google.oldest_pending == timedelta(minutes=7)
    assert outlook.oldest_pending is None  # a sync turned off is not waiting


def test_staff_read_them_on_the_page(situation, staff_client):
    changelist = staff_client.get(reverse("admin:calendars_calendarintegration_changelist"))
    assert reverse(HEALTH) in changelist.text

    page = staff_client.get(reverse(HEALTH))

    assert page.status_code == 200
    text = page.text
    assert "rate_limited" in text and "× 2" in text
    assert "invalid_client: secret expired" in text
    assert "en retard de 7 minutes" in text
    assert "(dont 1 à renouveler)" in text


def test_learners_cannot_read_them(learner_client, situation):
    response = learner_client.get(reverse(HEALTH))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_a_provider_detail_is_escaped(situation, staff_client):
    ProviderFault.objects.filter(provider="outlook").update(detail="<script>alert(1)</script>")
    text = staff_client.get(reverse(HEALTH)).text
    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
