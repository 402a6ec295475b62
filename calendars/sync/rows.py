"""Imported events written as rows: a page's new events inserted by one prepared statement.

`bulk_create` builds its INSERT anew for every batch, and every value goes through the model
field's preparation one call at a time: for a page of 2,500 events that was most of an
import's time (issue "Speed near the floor": 8.7 times slower than the same rows sent with
one `executemany`). Here the statement is written once per process, each column's adapter is
chosen once, and a page is one `executemany` on SQLite; on PostgreSQL, one INSERT that reads
the page's columns as arrays (`unnest`), as each row's own INSERT was planned and run apart.

`ON CONFLICT (calendar_id, external_id) DO NOTHING` keeps what `ignore_conflicts=True` gave:
another import of the same calendar that inserted one of these events first wins, and this
one goes on. It names the model's unique constraint, so any other fault (a NOT NULL, a
CHECK) still fails the page, where SQLite's `INSERT OR IGNORE` would have dropped the row.
SQLite (3.24+) and PostgreSQL both read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection, models

from calendars.models import CalendarEvent
from calendars.providers.types import RemoteEvent

# Fields copied from a RemoteEvent to a CalendarEvent.
# The description is not kept: no page or API answer shows a learner's own event bodies, so
# the application holds none of what they may say.
EVENT_FIELDS = [
    f.name
    for f in fields(RemoteEvent)
    if f.name not in ("external_id", "formation_marker", "description")
]
# The model's unique constraint `event_unique_per_calendar`, which a conflict is about.
UNIQUE_FIELDS = ("calendar", "external_id")
Adapter = Callable[[Any], Any]
# URL columns have a length limit; a longer link is not kept rather than failing the page.
_URL_FIELDS = frozenset(("online_url", "html_link"))
_URL_LIMIT = 2000


def column_value(name: str, value: Any) -> Any:
    """The value as the column keeps it."""
    if name in _URL_FIELDS and value and len(value) > _URL_LIMIT:
        return ""
    return value


def events_insert(
    *, calendar_id: int, events: Iterable[RemoteEvent], generation: int, now: datetime
) -> None:
    """Inserts `events` as new rows of the calendar, in one statement sent once per row
    (`executemany`); a row another import inserted meanwhile is left as it is."""
    statement = _insert_statement(connection.alias)
    fixed = statement.fixed(calendar_id=calendar_id, generation=generation, now=now)
    copied = statement.copied
    rows = [
        (
            event.external_id,
            *[adapt(column_value(name, getattr(event, name))) for name, adapt in copied],
            *fixed,
        )
        for event in events
    ]
    if not rows:
        return
    with connection.cursor() as cursor:
        if statement.columns_sql:
            cursor.execute(
                statement.columns_sql, [list(column) for column in zip(*rows, strict=True)]
            )
        else:
            cursor.executemany(statement.sql, rows)


@dataclass(frozen=True)
class _Insert:
    sql: str  # one row's INSERT, sent once per row
    copied: list[tuple[str, Adapter]]  # the RemoteEvent's fields, each with its adapter
    others: list[models.Field]  # the same for every row of a page
    # PostgreSQL: the page's rows in one statement, each column sent as one array.
    columns_sql: str = ""

    def fixed(self, *, calendar_id: int, generation: int, now: datetime) -> tuple[Any, ...]:
        """The values of `others`: the calendar, the generation, the time, and the fields'
        defaults (the description, which is never kept)."""
        given = {"calendar": calendar_id, "generation": generation, "updated_at": now}
        return tuple(
            _adapter(field)(given[field.name] if field.name in given else field.get_default())
            for field in self.others
        )


@cache
def _insert_statement(alias: str) -> _Insert:
    """The INSERT of every column but the key, and how each gets its value; once per
    database (the connection's quoting and adapters)."""
    meta = CalendarEvent._meta
    copied = [(name, _adapter(meta.get_field(name))) for name in EVENT_FIELDS]
    skipped = {"external_id", *EVENT_FIELDS}
    others = [f for f in meta.concrete_fields if not f.primary_key and f.name not in skipped]
    columns = [
        meta.get_field("external_id").column,
        *(meta.get_field(name).column for name, _adapt in copied),
        *(field.column for field in others),
    ]
    quote = connection.ops.quote_name
    names = ", ".join(quote(c) for c in columns)
    places = ", ".join(["%s"] * len(columns))
    target = ", ".join(quote(meta.get_field(name).column) for name in UNIQUE_FIELDS)
    # Only the model's own table and column names, quoted, go into the text.
    sql = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES ({places}) "  # noqa: S608
    sql += f"ON CONFLICT ({target}) DO NOTHING"
    columns_sql = ""
    if connection.vendor == "postgresql":
        # One statement for the page rather than one per row: PostgreSQL planned and ran
        # each row's INSERT on its own, most of a page's time there. DO NOTHING also skips an
        # id the page itself lists twice (only DO UPDATE refuses to touch a row twice).
        types = [
            meta.get_field("external_id").db_type(connection),
            *(meta.get_field(name).db_type(connection) for name, _adapt in copied),
            *(field.db_type(connection) for field in others),
        ]
        arrays = ", ".join(f"%s::{kind}[]" for kind in types)
        columns_sql = (
            f"INSERT INTO {quote(meta.db_table)} ({names}) "  # noqa: S608
            f"SELECT * FROM unnest({arrays}) ON CONFLICT ({target}) DO NOTHING"
        )
    return _Insert(sql, copied, others, columns_sql)


def _adapter(field: models.Field) -> Adapter:
    """How a value reaches the database, as the field's `get_db_prep_save` would send it,
    without its per-value checks (a RemoteEvent's times are aware, its dates are dates):
    dates and times through the backend's adapters (SQLite keeps them as text in Django's
    format, PostgreSQL takes them as they are); text, numbers and booleans are already what
    the driver takes."""
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, models.DateField):
        return connection.ops.adapt_datefield_value
    return _same


def _same(value: Any) -> Any:
    return value
