"""Importing calendars, whatever the provider: full and incremental listings applied to
CalendarEvent rows.

Idempotent at every line. Each page is applied in one transaction together with the
checkpoint that says where to resume, so a crash leaves either the page and its checkpoint or
neither. A full import marks every row it sees with a new generation; rows left with an older
one after the last page are gone at the provider and are deleted. Queries are a fixed number
per page, whatever the page's size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from calendars.errors import (
    AppCredentialsRejected,
    LockTimeout,
    ProviderError,
    ReconnectRequired,
    SyncTokenExpired,
    Unauthorized,
)
from calendars.locking import calendar_import_lock
from calendars.models import Calendar, CalendarEvent, CalendarIntegration
from calendars.providers import get_provider
from calendars.providers.types import (
    EventPage,
    RemoteEvent,
    Removed,
    SeriesChanged,
    SeriesListed,
)
from calendars.selectors import (
    forget_calendars,
    integration_calendars,
    integration_has_exports,
)
from calendars.services.connection import integration_refresh_calendars
from calendars.services.credentials import integration_call
from calendars.sync import retry
from calendars.sync.reconcile import exports_reconcile
from calendars.sync.results import ImportResult
from calendars.sync.rows import EVENT_FIELDS, column_value, events_insert

logger = logging.getLogger(__name__)


def import_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or timezone.now()
    return (
        now - timedelta(days=settings.CALENDAR_IMPORT_DAYS_BACK),
        now + timedelta(days=settings.CALENDAR_IMPORT_DAYS_AHEAD),
    )


def integration_import(*, integration: CalendarIntegration) -> ImportResult:
    """Imports every calendar the learner chose, and lists the one receiving formations for
    what the learner did to them there. A lost grant stops everything (the integration is
    marked 'needs reconnect'); other failures are raised after the other calendars were
    imported.

    Called by a sync run, under the integration's lock, which keeps the imports of its
    calendars one at a time (`calendar_import` takes a lock of its own for other callers)."""
    total = ImportResult()
    failure: ProviderError | None = None
    calendars = integration_calendars(integration)
    if not calendars:  # the listing failed when connecting
        calendars = integration_refresh_calendars(integration=integration)
        forget_calendars(integration)
    exports = integration_has_exports(integration)
    for calendar in calendars:
        if not (calendar.import_enabled or (exports and calendar.is_export_target)):
            continue
        try:
            total.add(_import(calendar))
        except (ReconnectRequired, AppCredentialsRejected):
            raise  # the same for every calendar: trying the next one only asks again
        except ProviderError as error:
            logger.warning("Import of calendar %s failed: %s", calendar.pk, error.message)
            failure = failure or error
    if total.created or total.updated or total.deleted:
        CalendarIntegration.objects.filter(pk=integration.pk).update(last_synced_at=timezone.now())
    if failure is not None:
        raise failure
    return total


def calendar_import(*, calendar: Calendar) -> ImportResult:
    """Brings one calendar's events up to date: incrementally from its sync token, or by a
    full listing (resumed from its checkpoint) when it has none or the provider refuses it.

    One import at a time per calendar: a second one finds the lock taken and returns at once
    (busy=1), since the running one brings the calendar up to date anyway.
    """
    try:
        held = calendar_import_lock(calendar.pk)
    except LockTimeout:
        return ImportResult(busy=1)
    with held:
        calendar.refresh_from_db()
        return _import(calendar)


def _import(calendar: Calendar) -> ImportResult:
    result = ImportResult()
    if calendar.sync_token and not calendar.resume_from:
        if _window_slid(calendar):
            logger.info("Calendar %s: the import window moved on, listing it again", calendar.pk)
        else:
            try:
                _incremental(calendar, result)
                return result
            except SyncTokenExpired:
                logger.info(
                    "Calendar %s: sync token refused, importing everything again", calendar.pk
                )
                calendar.sync_token = ""
                calendar.save(update_fields=["sync_token", "updated_at"])
    _full(calendar, result)
    return result


def _incremental(calendar: Calendar, result: ImportResult) -> None:
    page_token = ""
    with _Ahead(calendar, result) as ahead:
        while True:
            page = ahead.fetch(sync_token=calendar.sync_token, page=page_token)
            if page.next_page:
                ahead.start(sync_token=calendar.sync_token, page=page.next_page)
            _reread_changed_series(calendar, result, page)
            with transaction.atomic():
                result.add(_apply(calendar, page, generation=None, horizon=calendar.window_end))
                if page.next_page:
                    page_token = page.next_page
                    continue
                if page.sync_token and page.sync_token != calendar.sync_token:
                    calendar.sync_token = page.sync_token
                    calendar.last_imported_at = timezone.now()
                    calendar.save(update_fields=["sync_token", "last_imported_at", "updated_at"])
                return


def _full(calendar: Calendar, result: ImportResult) -> None:
    """The checkpoint keeps the listing's window with its next page: providers bind a page to
    the exact query that started the listing."""
    result.full = True
    if calendar.resume_from:  # resume the interrupted listing
        checkpoint = json.loads(calendar.resume_from)
        window = (
            datetime.fromisoformat(checkpoint["from"]),
            datetime.fromisoformat(checkpoint["to"]),
        )
        next_page = checkpoint["page"]
    else:  # a new full import
        calendar.generation += 1
        calendar.save(update_fields=["generation", "updated_at"])
        window, next_page = import_window(), ""
    restarted = False
    with _Ahead(calendar, result) as ahead:
        while True:
            try:
                page = ahead.fetch(window=window, page=next_page)
            except SyncTokenExpired:
                if restarted or not next_page:
                    raise
                # The provider refuses the page the listing stopped at: start it again, once.
                logger.info("Calendar %s: resume point refused, listing it again", calendar.pk)
                restarted = True
                calendar.generation += 1
                calendar.resume_from = ""
                calendar.save(update_fields=["generation", "resume_from", "updated_at"])
                window, next_page = import_window(), ""
                continue
            if page.next_page:  # fetched while this one is written
                ahead.start(window=window, page=page.next_page)
            with transaction.atomic():
                result.add(
                    _apply(calendar, page, generation=calendar.generation, horizon=window[1])
                )
                if page.next_page:
                    next_page = page.next_page
                    calendar.resume_from = json.dumps({
                        "page": next_page, "from": window[0].isoformat(),
                        "to": window[1].isoformat(),
                    })  # fmt: skip
                    calendar.save(update_fields=["resume_from", "updated_at"])
                    continue
                _full_end(calendar, result, page, window)
                return


def _full_end(
    calendar: Calendar, result: ImportResult, page: EventPage, window: tuple[datetime, datetime]
) -> None:
    """The listing's last page was applied: the rows it did not see go, and the sync token that
    continues it is kept, in that page's transaction; unless the listing looks wiped."""
    stale = calendar.events.filter(generation__lt=calendar.generation)
    if _looks_wiped(calendar, stale, window):
        # Listed empty, though it held events in the window: kept, and asked again
        # at the next sync (no sync token), whose listing decides.
        warning = gettext(
            "Le fournisseur a listé le calendrier « %(name)s » vide alors qu'il "
            "contenait des événements : ils sont gardés jusqu'à la prochaine "
            "synchronisation, qui vérifie."
        ) % {"name": calendar.name}
        logger.warning("Calendar %s listed empty: its events are kept", calendar.pk)
        result.warnings.append(str(warning))
        calendar.empty_listing_at = timezone.now()
        calendar.resume_from = calendar.sync_token = ""
        calendar.save(update_fields=[
            "empty_listing_at", "resume_from", "sync_token", "updated_at",
        ])  # fmt: skip
        return
    result.deleted += stale.delete()[0]
    calendar.empty_listing_at = None
    calendar.resume_from = ""
    calendar.sync_token = page.sync_token
    calendar.window_start, calendar.window_end = window
    calendar.last_imported_at = timezone.now()
    calendar.save(update_fields=[
        "resume_from", "sync_token", "window_start", "window_end", "last_imported_at",
        "empty_listing_at", "updated_at",
    ])  # fmt: skip


def _looks_wiped(calendar: Calendar, stale: Any, window: tuple[datetime, datetime]) -> bool:
    """Whether a full listing that just ended saw nothing of a calendar that held events
    inside its window, for the first time. How a calendar really emptied is told apart from a
    provider's glitch: by asking again. The next sync lists it again from scratch; if that
    listing is empty too, the events go. (Deletions the learner makes one by one arrive through
    incremental listings, which are always applied.)"""
    if calendar.empty_listing_at is not None:
        return False  # the second empty listing: it agrees
    if calendar.events.filter(generation=calendar.generation).exists():
        return False  # something was listed
    return stale.filter(start__lt=window[1], end__gt=window[0]).exists()


def _window_slid(calendar: Calendar) -> bool:
    """Whether today's window has moved on from the one the sync token continues by more than
    CALENDAR_WINDOW_SLIDE_DAYS: the next import lists the calendar again with today's, so that
    events now inside it come in and those now before it go. Rows stay in place meanwhile (the
    listing marks them; only those it did not see are swept at its end)."""
    if calendar.window_start is None:
        return True  # listed before windows were recorded
    slide = timedelta(days=settings.CALENDAR_WINDOW_SLIDE_DAYS)
    return import_window()[0] - calendar.window_start > slide


def _list_request(calendar: Calendar, **listing: Any) -> Callable[[str], EventPage]:
    """One page of the calendar's listing, asked with a given access token."""
    client = get_provider(calendar.integration.provider).calendars
    return lambda token: client.list_events(
        token, calendar.external_id, window=listing.get("window") or import_window(),
        sync_token=listing.get("sync_token", ""), page=listing.get("page", ""),
    )  # fmt: skip


class _Ahead:
    """A listing's pages, the next one fetched while the current one is written.

    The provider's answer is awaited, read and normalised in a second thread meanwhile, which
    takes the next page's request with the import's access token and nothing else: it never
    touches the database, and a failure there is only reported. Everything that does (a token
    refresh under the integration's lock, the retries and their waits, a refused sync state)
    happens here, in the import's thread, as for a page fetched in turn: the failed early
    try counts as the first one. A page is written, with its checkpoint, only after the one
    before it was committed.
    """

    def __init__(self, calendar: Calendar, result: ImportResult) -> None:
        self.calendar, self.result = calendar, result
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="calendar-import")
        self.pending: tuple[dict[str, Any], Future[EventPage]] | None = None

    def __enter__(self) -> _Ahead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A request still on its way is waited for: nothing of this import outlives it.
        self.pool.shutdown(wait=True, cancel_futures=True)

    def start(self, **listing: Any) -> None:
        """Sends for the page `listing` names, unless there is no access token yet."""
        if self.result.access_token:
            request = _list_request(self.calendar, **listing)
            self.pending = (listing, self.pool.submit(request, self.result.access_token))

    def fetch(self, **listing: Any) -> EventPage:
        """The page `listing` names: the one fetched ahead when it is that one."""
        pending, self.pending = self.pending, None
        tried: ProviderError | None = None
        if pending is not None:
            asked, future = pending
            self.result.requests += 1
            error = future.exception()
            if asked == listing:
                if error is None:
                    return future.result()
                if not isinstance(error, ProviderError):
                    raise error
                tried = error
        request = _list_request(self.calendar, **listing)
        return _call(self.calendar, self.result, request, tried=tried)


def _reread_changed_series(calendar: Calendar, result: ImportResult, page: EventPage) -> None:
    """A series whose master an incremental page lists has changed: some providers (Graph)
    give no removal for its deleted occurrences, or for the old dates of a rescheduled series.
    Its occurrences in the calendar's window (the one its rows were listed over) are read
    again, and those stored but no longer there go."""
    client = get_provider(calendar.integration.provider).calendars
    window = (calendar.window_start, calendar.window_end)  # set by the full listing
    for series_id in [item.external_id for item in page.items if isinstance(item, SeriesChanged)]:
        occurrences = _call(
            calendar,
            result,
            lambda token, series_id=series_id: client.list_series(  # type: ignore[misc]
                token, calendar.external_id, series_id, window=window
            ),
        )
        if occurrences is not None:
            ids = frozenset(o.external_id for o in occurrences if isinstance(o, RemoteEvent))
            page.items += [*occurrences, SeriesListed(series_id, ids)]


def _call[T](
    calendar: Calendar,
    result: ImportResult,
    request: Callable[[str], T],
    *,
    tried: ProviderError | None = None,
) -> T:
    """One request for the import, retried through rate limits, 5xx and timeouts (bounded),
    with a token refresh on a 401. The access token is asked for once per import, not once
    per request. `tried`: how the request, sent ahead with the import's access token, already
    failed once; the tries go on from there."""
    integration = calendar.integration

    def call(token: str) -> T:
        result.requests += 1
        return request(token)

    for attempt in range(settings.CALENDAR_RETRY_ATTEMPTS):
        try:
            if result.access_token:
                try:
                    if tried is not None:
                        raise tried
                    return call(result.access_token)
                except Unauthorized:
                    result.access_token = ""
                finally:
                    tried = None
            answer, result.access_token = integration_call(
                integration=integration, call=lambda token: (call(token), token)
            )
            return answer
        except SyncTokenExpired:
            raise
        except ProviderError as error:
            if error.permanent or attempt + 1 == settings.CALENDAR_RETRY_ATTEMPTS:
                raise
            retry.sleep(retry.backoff(error, attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _apply(
    calendar: Calendar, page: EventPage, *, generation: int | None, horizon: datetime | None
) -> ImportResult:
    """Applies one page: a fixed number of queries whatever its size."""
    counts = ImportResult(skipped=page.skipped)
    ours = exports_reconcile(calendar, page)
    # An event of ours (an exported formation) is not imported back as a duplicate.
    # Nor is anything past the window's end that an incremental listing brings (an endless
    # series, touched once, would otherwise be stored for decades).
    listed = {item.external_id: item for item in page.items
              if isinstance(item, RemoteEvent) and not item.formation_marker
              and item.external_id not in ours and calendar.import_enabled
              and (horizon is None or item.start < horizon)}  # fmt: skip
    removed = [item.external_id for item in page.items if isinstance(item, Removed)]
    existing = (
        {
            event.external_id: event
            for event in CalendarEvent.objects.filter(calendar=calendar, external_id__in=listed)
        }
        if listed
        else {}
    )
    to_create: list[RemoteEvent] = []
    to_update: list[CalendarEvent] = []
    for external_id, remote in listed.items():
        event = existing.get(external_id)
        if event is None:
            to_create.append(remote)
        elif _differs(remote, event):
            _copy(remote, event)
            to_update.append(event)
    now = timezone.now()
    if to_create:
        # Another import of the same calendar may have inserted some meanwhile: fine.
        events_insert(calendar_id=calendar.pk, events=to_create,
                      generation=generation or calendar.generation, now=now)  # fmt: skip
    if to_update:
        for event in to_update:
            event.updated_at = now
        CalendarEvent.objects.bulk_update(to_update, [*EVENT_FIELDS, "updated_at"], batch_size=500)
    if generation is not None and existing:
        # Only the bookkeeping column of rows seen unchanged: their content stays untouched.
        CalendarEvent.objects.filter(pk__in=[e.pk for e in existing.values()]).exclude(
            generation=generation
        ).update(generation=generation)
    for listed_series in (item for item in page.items if isinstance(item, SeriesListed)):
        counts.deleted += (
            CalendarEvent.objects.filter(calendar=calendar, series_id=listed_series.series_id)
            .exclude(external_id__in=listed_series.ids)
            .delete()[0]
        )
    if removed:
        # A series' master gone takes its occurrences with it.
        counts.deleted += (
            CalendarEvent.objects.filter(calendar=calendar)
            .filter(Q(external_id__in=removed) | Q(series_id__in=removed))
            .delete()[0]
        )
    counts.created, counts.updated = len(to_create), len(to_update)
    return counts


def _copy(remote: RemoteEvent, event: CalendarEvent) -> None:
    for name in EVENT_FIELDS:
        setattr(event, name, column_value(name, getattr(remote, name)))


def _differs(remote: RemoteEvent, event: CalendarEvent) -> bool:
    return any(
        getattr(event, name) != column_value(name, getattr(remote, name)) for name in EVENT_FIELDS
    )
