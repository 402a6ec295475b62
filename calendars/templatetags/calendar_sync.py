"""How the pages say when a calendar was last synced."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

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
