"""How the pages say when a calendar was last synced."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

register = template.Library()


@register.filter
def ago(moment: datetime | None) -> SafeString | str:
    """ "il y a 2 minutes" (or "à l'instant") in a <time> element that holds the instant and,
    on hover, the date and time."""
    if moment is None:
        return ""
    now = timezone.now()
    if now - moment < timedelta(minutes=1):
        words = _("à l'instant")
    else:
        words = _("il y a %(since)s") % {"since": timesince(moment, now, depth=1)}
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        moment.isoformat(),
        date_format(timezone.localtime(moment), "DATETIME_FORMAT"),
        words,
    )


@register.filter
def run_summary(run: Any) -> str:
    """What a finished run changed, saying what it counts ("185 événements importés,
    9 formations ajoutées à votre agenda"), only what changed; or that nothing did."""
    events = (run.created - run.formations_created, run.updated - run.formations_updated,
              run.deleted - run.formations_deleted)  # fmt: skip
    parts = [
        ngettext("%(count)d événement importé", "%(count)d événements importés", events[0]),
        ngettext("%(count)d événement modifié", "%(count)d événements modifiés", events[1]),
        ngettext("%(count)d événement supprimé", "%(count)d événements supprimés", events[2]),
        ngettext("%(count)d formation ajoutée à votre agenda",
                 "%(count)d formations ajoutées à votre agenda", run.formations_created),
        ngettext("%(count)d formation mise à jour",
                 "%(count)d formations mises à jour", run.formations_updated),
        ngettext("%(count)d formation retirée de votre agenda",
                 "%(count)d formations retirées de votre agenda", run.formations_deleted),
    ]  # fmt: skip
    counts = [*events, run.formations_created, run.formations_updated, run.formations_deleted]
    said = [text % {"count": count} for text, count in zip(parts, counts, strict=True) if count]
    return ", ".join(said) + "." if said else _("Rien n'a changé.")
