"""Conflicts with the learner's calendar on the formations' pages: formations know nothing of
calendars, so their templates ask these tags, as for the "in my calendar" panel.

"Mes formations" computes the conflicts of a whole list at once (`formations_conflicts`, two
queries whatever its length) and flags each item from them (`conflict_flag`, no query).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from calendars.agenda import all_day_dates, label_of_source
from calendars.availability import Conflict, learner_conflicts

register = template.Library()


@register.simple_tag(takes_context=True)
def formations_conflicts(context: template.Context, formations: Any) -> dict[int, list[Conflict]]:
    """`{% formations_conflicts upcoming as conflicts %}`: the learner's conflicts with
    these formations, by formation id. The list is read once (a queryset keeps its rows for
    the rest of the page)."""
    return learner_conflicts(user=context["request"].user, formations=list(formations))


@register.inclusion_tag("calendars/_conflict_flag.html")
def conflict_flag(conflicts: Any, formation: Any) -> dict[str, Any]:
    """An item of "Mes formations": how many of the learner's events clash with it (not
    dismissed), from `formations_conflicts`."""
    found = conflicts.get(formation.pk, []) if isinstance(conflicts, dict) else []
    count = sum(not c.dismissed for c in found)
    sentence = ngettext(
        "Conflit avec %(count)d événement de votre agenda",
        "Conflit avec %(count)d événements de votre agenda",
        count,
    ) % {"count": count}
    return {"count": count, "sentence": sentence, "formation": formation}


@register.inclusion_tag("calendars/_formation_conflicts.html", takes_context=True)
def formation_conflicts(context: template.Context, formation: Any) -> dict[str, Any]:
    """The formation page's conflicts, while it is to come: the learner's busy events over
    it, those of calendars hidden on the calendar page too, by provider, each with "Je m'en
    occupe"; those dismissed after them, with "Signaler à nouveau"."""
    conflicts: list[Conflict] = []
    if formation.end > timezone.now():
        found = learner_conflicts(user=context["request"].user, formations=[formation])
        conflicts = found.get(formation.pk, [])
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for conflict in conflicts:
        if not conflict.dismissed:
            by_provider.setdefault(conflict.provider, []).append(_row(conflict))
    groups = [
        {
            "sentence": ngettext(
                "Conflit avec %(count)d événement de votre agenda (%(provider)s) :",
                "Conflit avec %(count)d événements de votre agenda (%(provider)s) :",
                len(rows),
            )
            % {"count": len(rows), "provider": label_of_source(name)},
            "rows": rows,
        }
        for name, rows in by_provider.items()
    ]
    return {
        "formation": formation,
        "csrf_token": context.get("csrf_token"),
        "groups": groups,
        "dismissed": [_row(c) for c in conflicts if c.dismissed],
    }


def _row(conflict: Conflict) -> dict[str, Any]:
    return {
        "conflict": conflict,
        "when": conflict_when(conflict),
        "provider": label_of_source(conflict.provider),
    }


def conflict_when(conflict: Conflict) -> str:
    """When the event is, in the learner's zone (the active one), short: "mardi 10:00–11:00",
    "mardi 22:00 – mercredi 02:00", "mardi, toute la journée"."""
    zone = timezone.get_current_timezone()
    if conflict.all_day:
        first, end = all_day_dates(conflict.start, conflict.end, zone)
        last = end - timedelta(days=1)
        if first == last:
            return _("%(day)s, toute la journée") % {"day": date_format(first, "l")}
        return _("du %(first)s au %(last)s, toute la journée") % {
            "first": date_format(first, "l j F"),
            "last": date_format(last, "l j F"),
        }
    start, end = timezone.localtime(conflict.start, zone), timezone.localtime(conflict.end, zone)
    day = date_format(start, "l")
    if (end - timedelta.resolution).date() <= start.date():  # ending at midnight: that day
        return f"{day} {time_format(start, 'H:i')}–{time_format(end, 'H:i')}"
    return f"{day} {time_format(start, 'H:i')} – {date_format(end, 'l')} {time_format(end, 'H:i')}"
