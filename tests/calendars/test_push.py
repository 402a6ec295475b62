"""Push notifications: Google watch channels and Graph subscriptions opened, renewed and closed
against the sandbox (the webhooks' checks: test_webhooks.py). End-to-end tests run the site on
a live server that the sandbox calls back: a change made in the sandbox reaches the learner's
calendar without anyone asking for a sync."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from calendars import tasks
from calendars.models import CalendarEvent, PushChannel, SyncRun
from tests.calendars.calendar_helpers import wait_for
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("no_waiting")


# --- end to end, the sandbox calling a live server back ---------------------------------------


@pytest.fixture
def live_push(settings, live_server, sandbox_settings):
    """Push on, the webhooks served by a live server the sandbox can call."""
    if connection.vendor != "postgresql":
        # The sandbox calls the live server back from its own threads, at any time, even
        # while another call is under way: more than SQLite's one in-memory connection,
        # shared between threads, can take.
        pytest.skip("webhooks called back live need PostgreSQL; .ci/run runs this test against it")
    settings.CALENDAR_PUSH_ENABLED = True
    settings.CALENDAR_WEBHOOK_URL = live_server.url
    settings.CALENDAR_PUSH_DEBOUNCE = 0.0
    yield sandbox_settings
    # The live server outlives the test: channels left open would call it during the next.
    with sandbox_settings.google.lock:
        for channel in sandbox_settings.google.channels.values():
            channel.stopped = True
        sandbox_settings.google.channels.clear()
    with sandbox_settings.microsoft._lock:
        sandbox_settings.microsoft._subscriptions.clear()
    wait_for(sandbox_settings.microsoft._queue.empty, timeout=5)


def _rename_one_event(sandbox, integration, title):
    account = sandbox.store.account(integration.account_email)
    remote = account.calendars[integration.calendars.get(is_primary=True).external_id]
    imported = set(CalendarEvent.objects.values_list("external_id", flat=True))
    event = next(e for e in remote.events.values() if e.id in imported and not e.series_id)
    event.title = title
    sandbox.store.save(account, remote, event)
    return event


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_a_change_in_the_learners_calendar_arrives_by_itself(live_push, learner, provider):
    integration = connect(live_push, learner, provider)
    tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    channel = PushChannel.objects.get(integration=integration)
    if provider == "google":
        opened = live_push.google.channels[channel.channel_id]
        assert opened.address == live_push_address(live_push, "google")
        assert channel.calendar.is_primary
    else:
        (subscription,) = [s for s in live_push.microsoft.subscriptions()
                           if s.id == channel.channel_id]  # fmt: skip
        assert subscription.resource == "me/events"
        assert channel.calendar is None

    event = _rename_one_event(live_push, integration, "Changé dans l'agenda")
    assert wait_for(
        lambda: CalendarEvent.objects.filter(
            external_id=event.id, title="Changé dans l'agenda"
        ).exists()
    ), "the change did not arrive"
    assert integration.sync_runs.filter(trigger="push", error="").exists()


def live_push_address(sandbox, provider):
    from django.conf import settings

    return settings.CALENDAR_WEBHOOK_URL + reverse(f"calendars:webhook_{provider}")


@pytest.mark.django_db(transaction=True)
def test_disconnecting_closes_the_channels(live_push, learner):
    from calendars.services.lifecycle import integration_disconnect

    google = connect(live_push, learner, "google")
    outlook = connect(live_push, learner, "outlook")
    for integration in (google, outlook):
        tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    channels = dict(PushChannel.objects.values_list("integration__provider", "channel_id"))
    assert channels["google"] in live_push.google.channels
    assert channels["outlook"] in {s.id for s in live_push.microsoft.subscriptions()}

    for integration in (google, outlook):
        integration_disconnect(integration=integration)
    assert channels["google"] not in live_push.google.channels
    assert channels["outlook"] not in {s.id for s in live_push.microsoft.subscriptions()}
    assert not PushChannel.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_turning_automatic_sync_off_closes_the_channels(live_push, learner):
    from calendars.services.connection import integration_update_settings

    integration = connect(live_push, learner, "google")
    tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    channel_id = PushChannel.objects.get().channel_id
    integration_update_settings(integration=integration, sync_enabled=False)
    tasks.sync_integration(integration.pk, SyncRun.Trigger.SETTINGS)
    assert channel_id not in live_push.google.channels
    assert not PushChannel.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_channels_are_renewed_before_they_expire(live_push, learner):
    google = connect(live_push, learner, "google")
    outlook = connect(live_push, learner, "outlook")
    for integration in (google, outlook):
        tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    soon = timezone.now() + timedelta(minutes=5)
    PushChannel.objects.update(expires_at=soon)
    old = dict(PushChannel.objects.values_list("integration__provider", "channel_id"))

    assert tasks.renew_channels() == 2

    new = {c.integration.provider: c for c in PushChannel.objects.select_related("integration")}
    assert all(c.expires_at > timezone.now() + timedelta(days=1) for c in new.values())
    # Graph extends a subscription; Google needs a new channel, the old one stopped.
    assert new["outlook"].channel_id == old["outlook"]
    assert new["google"].channel_id != old["google"]
    assert old["google"] not in live_push.google.channels
    assert new["google"].channel_id in live_push.google.channels
    assert tasks.renew_channels() == 0


@pytest.mark.django_db(transaction=True)
def test_graph_lifecycle_notifications_are_handled(live_push, learner):
    integration = connect(live_push, learner, "outlook")
    tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    first = PushChannel.objects.get()
    control = f"{live_push.https_url}/_sandbox/api/subscriptions"

    def answered():
        return sum(1 for d in live_push.microsoft.deliveries if d["kind"] == "lifecycle")

    def lifecycle(channel_id, event):
        """Sends the notification, and waits until our webhook has answered it."""
        sent = answered()
        response = requests.post(
            f"{control}/{channel_id}/lifecycle/{event}", verify=str(live_push.ca_path), timeout=10
        )
        assert response.status_code == 202
        assert wait_for(lambda: answered() > sent)

    # Reauthorization required: renewing the subscription reauthorizes it.
    PushChannel.objects.update(expires_at=timezone.now() + timedelta(hours=1))
    lifecycle(first.channel_id, "reauthorizationRequired")
    assert wait_for(
        lambda: PushChannel.objects.get().expires_at > timezone.now() + timedelta(days=1)
    )

    # Missed notifications: a sync catches up.
    before = integration.sync_runs.filter(trigger="push").count()
    lifecycle(first.channel_id, "missed")
    assert wait_for(lambda: integration.sync_runs.filter(trigger="push").count() > before)

    # Removed: a new subscription replaces it, and a sync catches up.
    before = integration.sync_runs.filter(trigger="push").count()
    lifecycle(first.channel_id, "subscriptionRemoved")
    assert wait_for(
        lambda: (
            PushChannel.objects.exclude(channel_id=first.channel_id).exists()
            and integration.sync_runs.filter(trigger="push", finished_at__isnull=False).count()
            > before
        )
    ), "no new subscription"
    new = PushChannel.objects.get()
    assert new.channel_id in {s.id for s in live_push.microsoft.subscriptions()}


def test_no_channel_without_an_address_providers_can_call(settings, sandbox_settings, learner):
    settings.CALENDAR_PUSH_ENABLED = True
    settings.CALENDAR_WEBHOOK_URL = "http://calendar.example.com"  # plain http, not loopback
    integration = connect(sandbox_settings, learner, "google")
    tasks.sync_integration(integration.pk, SyncRun.Trigger.CONNECT)
    assert integration.sync_runs.get().error == ""
    assert not PushChannel.objects.exists()


def test_a_calendar_google_sends_no_push_for_is_polled_and_the_others_get_channels(
    settings, sandbox_settings, learner
):
    """Google refuses events.watch on its generated calendars (holidays, birthdays) with 400
    pushNotSupportedForRequestedResource: that calendar is polled from then on, the others
    still get their channels, and the refused watch is not sent again at every sync."""
    from calendars.push import integration_channels_reconcile
    from calendars.services.connection import integration_choose_calendars

    settings.CALENDAR_PUSH_ENABLED = True
    settings.CALENDAR_WEBHOOK_URL = "http://127.0.0.1:9"  # loopback: the sandbox accepts it
    integration = connect(sandbox_settings, learner, "google")
    calendars = list(integration.calendars.all())
    holiday = next(c for c in calendars if "#holiday@" in c.external_id)
    integration_choose_calendars(
        integration=integration,
        imported={c.pk for c in calendars},
        export_target=integration.calendars.get(is_primary=True).pk,
    )

    integration_channels_reconcile(integration=integration)

    watched = set(PushChannel.objects.values_list("calendar_id", flat=True))
    assert watched == {c.pk for c in calendars if c.pk != holiday.pk}
    holiday.refresh_from_db()
    assert holiday.polled
    sandbox_settings.reset_counters()
    integration_channels_reconcile(integration=integration)
    assert sandbox_settings.count("google.events.watch") == 0
