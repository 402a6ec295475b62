"""Push notifications end to end: the sandbox calls the live server's webhook, which sends a
debounced sync to the workers through Redis; the learner's change is imported within seconds
and a burst of changes makes one sync, not one per change."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from calendars.models import CalendarEvent, CalendarIntegration, PushChannel, SyncRun
from calendars.push import integration_channels_stop
from calendars.tasks import dispatch_sync
from tests.calendars.connect_helpers import connect
from tests.sandbox.google.helpers import calendar_service, google_credentials
from tests.workers.helpers import assert_never_overlapping, wait_for

CHANGES = 20
# Longer than the burst takes (about 1.5 s here), even on a loaded machine.
DEBOUNCE = 4.0
# From the last change to its import: at most the debounce, then one incremental sync.
IMPORTED_WITHIN = 20.0


@pytest.fixture
def push(settings: Any, live_server: Any) -> Iterator[Any]:
    """Channels opened towards the live server (the web process of this test), in this process
    and in the workers; every channel closed at the end, so that the session's sandbox stops
    calling it."""
    settings.CALENDAR_PUSH_ENABLED = True
    settings.CALENDAR_WEBHOOK_URL = live_server.url
    settings.CALENDAR_PUSH_DEBOUNCE = DEBOUNCE
    yield live_server
    for integration in CalendarIntegration.objects.filter(channels__isnull=False).distinct():
        integration_channels_stop(integration=integration)


class LearnerCalendar:
    """The learner editing their own primary calendar through Google's API, as another app
    or Google's own pages would; what it creates is taken out of the session's sandbox
    afterwards."""

    def __init__(self, sandbox: Any, email: str) -> None:
        self.sandbox = sandbox
        self.email = email
        self.service = calendar_service(sandbox, google_credentials(sandbox, email))
        self.created: list[str] = []

    def insert(self, summary: str, start: Any) -> dict[str, Any]:
        body = {
            "summary": summary,
            "start": {"dateTime": start.isoformat()},
            "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
        }
        event = self.service.events().insert(calendarId="primary", body=body).execute()
        self.created.append(event["id"])
        return event

    def rename(self, event_id: str, summary: str) -> None:
        self.service.events().patch(
            calendarId="primary", eventId=event_id, body={"summary": summary}
        ).execute()

    def forget(self) -> None:
        account = self.sandbox.store.account(self.email)
        with self.sandbox.store.lock:
            for calendar in account.calendars.values():
                for event_id in self.created:
                    calendar.events.pop(event_id, None)


@pytest.fixture
def learner_calendar(sandbox_settings: Any) -> Iterator[Any]:
    calendars: list[LearnerCalendar] = []

    def open_calendar(email: str) -> LearnerCalendar:
        calendars.append(LearnerCalendar(sandbox_settings, email))
        return calendars[-1]

    yield open_calendar
    for calendar in calendars:
        calendar.forget()


def test_a_burst_of_changes_is_imported_by_one_debounced_push_sync_within_seconds(
    workers, push, sandbox_settings, learner_calendar, make_user
):
    with workers.inline():
        integration = connect(sandbox_settings, make_user(), "google")
    workers.start(concurrency=2)
    dispatch_sync(integration.pk, SyncRun.Trigger.CONNECT)
    channel = wait_for(
        lambda: PushChannel.objects.filter(integration=integration).first(),
        timeout=60,
        what=lambda: f"no push channel opened\n{workers.logs()}",
    )
    workers.wait_idle()
    assert channel.calendar.is_primary
    remote_channel = sandbox_settings.google.channels[channel.channel_id]
    calendar = learner_calendar(integration.account_email)

    burst_start = time.monotonic()
    event = calendar.insert("Rendez-vous 1", timezone.now() + timedelta(days=2))
    for number in range(2, CHANGES + 1):
        seen = remote_channel.number
        calendar.rename(event["id"], f"Rendez-vous {number}")
        # Each change notified, not merged by the sandbox into a notification still waiting.
        wait_for(lambda seen=seen: remote_channel.number > seen, timeout=10, what="not notified")
    burst = time.monotonic() - burst_start

    wait_for(
        lambda: CalendarEvent.objects.filter(
            calendar__integration=integration,
            external_id=event["id"],
            title=f"Rendez-vous {CHANGES}",
        ).exists(),
        timeout=IMPORTED_WITHIN,
        what=lambda: f"the last change was not imported\n{workers.logs()}",
    )
    workers.wait_idle()

    runs = SyncRun.objects.filter(integration=integration)
    pushed = runs.filter(trigger=SyncRun.Trigger.PUSH)
    assert remote_channel.number >= CHANGES
    assert 1 <= pushed.count() <= 2, (pushed.count(), f"burst of {burst:.1f} s")
    assert [run.error for run in runs] == ["" for _ in runs]
    assert_never_overlapping(runs)
