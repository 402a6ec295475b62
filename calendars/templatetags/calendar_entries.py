"""The calendar page's entries (month and agenda views) and the conflict marker of every view,
drawn in Python.

A month shows dozens of entries; an included template for each one, with its variables and
filters resolved one by one, took most of the page's time (see the load section of
benchmarks/README.md). What they say is unchanged: every value from a provider or a learner
(titles, places, calendars' names) goes through `format_html`, which escapes it.
"""

from __future__ import annotations

import html

from django import template
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from calendars.agenda import AgendaItem, Day, Entry

register = template.Library()


@register.simple_tag
def conflict_marker(item: AgendaItem, part: str = "") -> SafeString:
    """An item that clashes with another (calendars/layout.py): a badge one sees, and words for
    screen readers (the item's class has-conflict frames it); `part` "badge" or "words" for one
    of them only."""
    if not item.conflicts:
        return SafeString("")
    html = []
    if part != "words":
        html.append(
            format_html(
                '<span class="badge badge-conflict" aria-hidden="true">⚠ {}</span>', _("Conflit")
            )
        )
    if part != "badge":
        count = len(item.conflicts)
        if item.is_formation:
            sentence = ngettext(
                "en conflit avec l'événement %(titles)s",
                "en conflit avec les événements %(titles)s",
                count,
            )
        else:
            sentence = ngettext(
                "en conflit avec la formation %(titles)s",
                "en conflit avec les formations %(titles)s",
                count,
            )
        # As {% blocktranslate %} does: the catalogue's sentence as it is, the titles escaped.
        words = mark_safe(sentence % {"titles": conditional_escape(item.conflict_titles)})  # noqa: S308
        html.append(format_html('<span class="visually-hidden">, {}</span>', words))
    return SafeString("".join(html))


def _escape(value: object) -> str:
    """What django.utils.html.escape gives, without its lazy-string wrapper: a month has
    hundreds of values to escape, and the wrapper took a third of the time."""
    return html.escape(str(value))


def _event_path(context: template.Context, key: str) -> str:
    """The address of an item's details: the path `reverse()` gives once per page, with each
    item's key (resolving it for each entry took more time than drawing the entry)."""
    prefix = context.render_context.get(_event_path)
    if prefix is None:
        prefix = reverse("calendars:event", args=["-"]).removesuffix("-/")
        context.render_context[_event_path] = prefix
    return f"{prefix}{key}/"


def _page_words(context: template.Context) -> dict[object, str]:
    """What every entry of a page repeats, translated and escaped once a page rather than once
    an entry: the places' and calendars' labels, the period's query and (by `source_label`)
    the sources' names."""
    words = context.render_context.get(_page_words)
    if words is None:
        words = {
            "location": _escape(_("Lieu :")),
            "calendar": _escape(_("Calendrier :")),
            "query": _escape(context.get("period_query", "")),
        }
        context.render_context[_page_words] = words
    return words


def _source_label(words: dict[object, str], item: AgendaItem) -> tuple[str, str]:
    """The item's source and its name, escaped, from the page's words."""
    key = (_source_label, item.source)
    if key not in words:
        words[key] = _escape(item.source)
        words[key, "label"] = _escape(item.source_label)
    return words[key], words[key, "label"]


# The badges of an entry only some have: whether it has it, its HTML and its words.
_BADGES = (
    (lambda item: item.cancelled, '<span class="badge badge-cancelled">{}</span>',
     gettext_lazy("Annulée")),
    (lambda item: item.response == "tentative", '<span class="badge badge-tentative">{}</span>',
     gettext_lazy("Peut-être")),
    (lambda item: item.response == "needs_action",
     '<span class="badge badge-tentative">{}</span>', gettext_lazy("Invitation sans réponse")),
    (lambda item: not item.busy, '<span class="badge badge-free">{}</span>',
     gettext_lazy("Disponible")),
)  # fmt: skip


@register.simple_tag(takes_context=True)
def calendar_entry(context: template.Context, entry: Entry, compact: bool = False) -> SafeString:
    """One entry of a day's list: its source, time, title (a link to its details, shown in
    place by calendar-details.js), badges and place; `compact` (the month view) says the source
    to screen readers only and leaves the calendar's name out. Every value is escaped."""
    item = entry.item
    classes = (
        (" is-cancelled" if item.cancelled else "")
        + (" is-tentative" if item.tentative else "")
        + ("" if item.busy else " is-free")
        + (" has-conflict" if item.conflicts else "")
    )
    extra = [badge.format(_escape(words)) for applies, badge, words in _BADGES if applies(item)]
    if item.conflicts:
        extra.append(conflict_marker(item))
    words = _page_words(context)
    if item.location:
        extra.append(
            '<span class="entry-location"><span class="visually-hidden">'
            f"{words['location']} </span>{_escape(item.location)}</span>"
        )
    if not compact and item.calendar:
        extra.append(
            '<span class="entry-calendar"><span class="visually-hidden">'
            f"{words['calendar']} </span>{_escape(item.calendar)}</span>"
        )
    moment = item.first_day.isoformat() if item.all_day else item.start.isoformat()
    query = words["query"]
    source, source_label = _source_label(words, item)
    parts = "".join(f"  {part}\n" for part in extra)
    return mark_safe(  # noqa: S308 (every value escaped above)
        f'<li class="entry source-{source}{classes}">\n'
        '  <span class="marker" aria-hidden="true"></span>\n'
        f'  <span class="entry-source{" visually-hidden" if compact else ""}">'
        f"{source_label}{' :' if compact else ''}</span>\n"
        f'  <time class="entry-when" datetime="{moment}">{_escape(entry.when)}</time>\n'
        f'  <a class="entry-title" href="{_escape(_event_path(context, item.key))}?{query}" '
        f'data-details data-key="{_escape(item.key)}">'
        f"{_escape(item.title or _('(sans titre)'))}</a>\n"
        f"{parts}</li>\n"
    )


# A month shows this many entries a day, then a link to the day's view for the others.
MONTH_DAY_ENTRIES = 4


@register.simple_tag(takes_context=True)
def month_day(context: template.Context, day: Day) -> SafeString:
    """One day of the month view: its cell, with its label (a link to the day's view), its
    first entries and how many more there are. The month draws 42 of them: the same HTML as
    a template would give, without resolving each cell's variables one by one."""
    today = context.get("today")
    period = context.get("period")
    date = day.date
    is_today = date == today
    classes = (
        (" other-month" if period is not None and date.month != period.day.month else "")
        + ("" if day.entries else " is-empty")
        + (" is-today" if is_today else "")
    )
    day_url = f"{_escape(context.get('calendar_url', ''))}?view=day&amp;date={day.iso}"
    # As {% translate %} writes it: the catalogue's words, not escaped.
    today_words = f'<span class="visually-hidden"> ({_("aujourd'hui")})</span>' if is_today else ""
    current = ' aria-current="date"' if is_today else ""
    html = [
        f'<td class="day{classes}"{current}>\n'
        f'        <p class="day-label"><a href="{day_url}"><span class="day-number" '
        f'aria-hidden="true">{date.day}</span><span class="day-full">{_escape(day.name)}</span>'
        f"{today_words}</a></p>\n        "
    ]
    if day.entries:
        shown = "".join(
            calendar_entry(context, entry, compact=True)
            for entry in day.entries[:MONTH_DAY_ENTRIES]
        )
        html.append(f'\n        <ul class="entries">\n          {shown}\n        </ul>\n        ')
        more = len(day.entries) - MONTH_DAY_ENTRIES
        if more > 0:
            # The catalogue's sentence as {% blocktranslate count %} wrote it.
            words = ngettext(
                '+ %(counter)s autre<span class="visually-hidden"> ce jour-là</span>',
                '+ %(counter)s autres<span class="visually-hidden"> ce jour-là</span>',
                more,
            ) % {"counter": more}
            html.append(f'\n        <a class="day-more" href="{day_url}">{words}</a>\n        ')
        html.append("\n        ")
    html.append("\n      </td>")
    return mark_safe("".join(html))  # noqa: S308 (every value from data escaped above)
