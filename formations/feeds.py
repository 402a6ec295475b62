"""Each learner's private calendar subscription: its address, and what that address serves.

Calendar programs (Apple Calendar, Thunderbird, Google and Outlook "from URL") poll the
address without a session: the token in it is the only credential.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext

from accounts.models import SecurityEvent, learner_language
from accounts.security import security_event_record
from formations.ics import build_ics
from formations.models import CalendarFeed, Enrollment, Formation, new_feed_token


@dataclass(frozen=True)
class FeedDocument:
    body: bytes
    etag: str  # strong and quoted: a digest of the exact bytes served
    last_modified: datetime
    language: str  # the calendar's name is in the learner's language


def feed_for(*, user: Any) -> CalendarFeed:
    """The learner's feed, created with a fresh token the first time it is asked for."""
    feed, _created = CalendarFeed.objects.get_or_create(user=user)
    return feed


def feed_regenerate(*, user: Any) -> CalendarFeed:
    """A new address for the learner's feed: the previous one answers 404 from now on."""
    feed, _created = CalendarFeed.objects.update_or_create(
        user=user, defaults={"token": new_feed_token()}
    )
    security_event_record(kind=SecurityEvent.Kind.FEED_REGENERATED, user=user)
    return feed


def feed_by_token(*, token: str) -> CalendarFeed | None:
    """The feed a token opens, or None. A deactivated account's feed opens nothing."""
    return (
        CalendarFeed.objects.select_related("user")
        .filter(token=token, user__is_active=True)
        .first()
    )


def feed_touch(*, user_ids: Iterable[int]) -> None:
    """Record that formations left these learners' feeds, for their Last-Modified."""
    CalendarFeed.objects.filter(user_id__in=set(user_ids)).update(changed_at=timezone.now())


def feed_document(*, feed: CalendarFeed, absolute_url: Callable[[Formation], str]) -> FeedDocument:
    """The feed's body with its validators. Nothing changed, same bytes: DTSTAMP is the last
    change rather than the time of the request, so a client's If-None-Match can match."""
    formations = list(
        Formation.objects.for_learner(feed.user)
        # The join for_learner() filtered on: this learner's enrollment, not another's.
        .annotate(enrolled_at=F("enrollments__created_at"))
        .order_by("start", "pk")
    )
    last_modified = max(
        [
            feed.changed_at,
            *(f.updated_at for f in formations),
            *(f.enrolled_at for f in formations),
        ]
    )
    # The learner's language, not the request's: calendar programs send no language cookie,
    # and the same learner must get the same bytes whatever program asks.
    language = learner_language(feed.user_id)
    with translation.override(language):
        name = gettext("Mes formations")
    body = build_ics(formations, absolute_url=absolute_url, name=name, now=last_modified)
    etag = f'"{hashlib.sha256(body).hexdigest()}"'
    return FeedDocument(body=body, etag=etag, last_modified=last_modified, language=language)


def enrollment_deleted(sender: Any, instance: Enrollment, **kwargs: Any) -> None:
    """post_delete receiver: the formation leaves the feed and no date in it says so."""
    feed_touch(user_ids=[instance.learner_id])


def enrollment_saving(sender: Any, instance: Enrollment, raw: bool = False, **kwargs: Any) -> None:
    """pre_save receiver: an enrollment edited in place (the admin allows it) moves a formation
    from one feed to another while keeping its old dates."""
    if raw or instance.pk is None:
        return
    before = (
        Enrollment.objects.filter(pk=instance.pk).values_list("learner_id", "formation_id").first()
    )
    if before is not None and before != (instance.learner_id, instance.formation_id):
        feed_touch(user_ids=[before[0], instance.learner_id])
