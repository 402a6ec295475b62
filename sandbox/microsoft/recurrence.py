"""Recurrence: an RRULE as Graph's patternedRecurrence, and back.

https://learn.microsoft.com/graph/api/resources/patternedrecurrence
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from core.timezones import windows_zone
from sandbox.microsoft.formats import tz
from sandbox.server import HTTPError
from sandbox.store import Event

_DAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_RRULE_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
_INDEX_NAMES = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}


def _rrule_parts(line: str) -> dict[str, str]:
    body = line.split(":", 1)[1] if ":" in line else line
    return {k.upper(): v for k, _, v in (p.partition("=") for p in body.split(";")) if v}


def _local_start_date(event: Event) -> date:
    if isinstance(event.start, datetime):
        return event.start.astimezone(tz(event.time_zone)).date()
    return event.start


def recurrence_json(event: Event) -> dict[str, Any] | None:
    """A series master's RRULE as Graph's patternedRecurrence; None if it cannot be mapped."""
    line = next((x for x in event.recurrence if x.upper().startswith("RRULE:")), None)
    if line is None:
        return None
    parts = _rrule_parts(line)
    start = _local_start_date(event)
    interval = int(parts.get("INTERVAL", "1") or 1)
    wkst = parts.get("WKST", "")
    first_day = _DAY_NAMES[_RRULE_DAYS.index(wkst)] if wkst in _RRULE_DAYS else "sunday"
    days: list[str] = []
    index = 0
    for item in filter(None, parts.get("BYDAY", "").split(",")):
        match = re.fullmatch(r"([+-]?\d)?(MO|TU|WE|TH|FR|SA|SU)", item.upper())
        if not match:
            return None
        days.append(_DAY_NAMES[_RRULE_DAYS.index(match[2])])
        index = int(match[1]) if match[1] else index
    if parts.get("BYSETPOS"):
        index = int(parts["BYSETPOS"].split(",")[0])
    pattern: dict[str, Any] = {
        "type": "",
        "interval": interval,
        "month": 0,
        "dayOfMonth": 0,
        "daysOfWeek": [],
        "firstDayOfWeek": first_day,
        "index": "first",
    }
    freq = parts.get("FREQ", "")
    if freq == "DAILY":
        pattern["type"] = "daily"
    elif freq == "WEEKLY":
        pattern.update(type="weekly", daysOfWeek=days or [_DAY_NAMES[start.weekday()]])
    elif freq in {"MONTHLY", "YEARLY"}:
        prefix = "Monthly" if freq == "MONTHLY" else "Yearly"
        if freq == "YEARLY":
            pattern["month"] = int(parts.get("BYMONTH", start.month))
        if days:
            if index not in _INDEX_NAMES:
                return None
            pattern.update(type=f"relative{prefix}", daysOfWeek=days, index=_INDEX_NAMES[index])
        else:
            day = int(parts.get("BYMONTHDAY", start.day))
            pattern.update(type=f"absolute{prefix}", dayOfMonth=day)
    else:
        return None
    range_: dict[str, Any] = {
        "type": "noEnd",
        "startDate": start.isoformat(),
        "endDate": "0001-01-01",
        "recurrenceTimeZone": windows_zone(event.time_zone),
        "numberOfOccurrences": 0,
    }
    if parts.get("COUNT"):
        range_.update(type="numbered", numberOfOccurrences=int(parts["COUNT"]))
    elif parts.get("UNTIL"):
        until = parts["UNTIL"]
        when = datetime.strptime(until[:8], "%Y%m%d").date()
        range_.update(type="endDate", endDate=when.isoformat())
    return {"pattern": pattern, "range": range_}


def rrule_from_json(value: Any) -> list[str]:
    """Graph's patternedRecurrence as RRULE lines; raises HTTPError when it is not valid."""

    def bad(message: str) -> HTTPError:
        return HTTPError(400, "ErrorInvalidRequest", f"Invalid recurrence: {message}")

    if not isinstance(value, dict) or not isinstance(value.get("pattern"), dict):
        raise bad("a pattern is required.")
    pattern, range_ = value["pattern"], value.get("range") or {}
    kind = str(pattern.get("type", ""))
    try:
        interval = int(pattern.get("interval") or 1)
    except (TypeError, ValueError):
        raise bad("interval must be a number.") from None
    days = pattern.get("daysOfWeek") or []
    if not isinstance(days, list) or any(str(d).lower() not in _DAY_NAMES for d in days):
        raise bad("daysOfWeek must list day names.")
    byday = ",".join(_RRULE_DAYS[_DAY_NAMES.index(str(d).lower())] for d in days)
    index = {v: k for k, v in _INDEX_NAMES.items()}.get(str(pattern.get("index") or "first"))
    parts = []
    if kind == "daily":
        parts.append("FREQ=DAILY")
    elif kind == "weekly":
        if not byday:
            raise bad("a weekly pattern needs daysOfWeek.")
        parts += ["FREQ=WEEKLY", f"BYDAY={byday}"]
        first = str(pattern.get("firstDayOfWeek") or "sunday").lower()
        if first in _DAY_NAMES:
            parts.append(f"WKST={_RRULE_DAYS[_DAY_NAMES.index(first)]}")
    elif kind in {"absoluteMonthly", "absoluteYearly"}:
        parts.append("FREQ=MONTHLY" if kind == "absoluteMonthly" else "FREQ=YEARLY")
        if kind == "absoluteYearly":
            parts.append(f"BYMONTH={int(pattern.get('month') or 1)}")
        parts.append(f"BYMONTHDAY={int(pattern.get('dayOfMonth') or 1)}")
    elif kind in {"relativeMonthly", "relativeYearly"}:
        if not byday or index is None:
            raise bad("a relative pattern needs daysOfWeek and index.")
        parts.append("FREQ=MONTHLY" if kind == "relativeMonthly" else "FREQ=YEARLY")
        if kind == "relativeYearly":
            parts.append(f"BYMONTH={int(pattern.get('month') or 1)}")
        parts += [f"BYDAY={byday}", f"BYSETPOS={index}"]
    else:
        raise bad(f"unknown pattern type {kind!r}.")
    if interval != 1:
        parts.append(f"INTERVAL={interval}")
    range_type = str(range_.get("type") or "noEnd")
    if range_type == "numbered":
        count = int(range_.get("numberOfOccurrences") or 0)
        if count < 1:
            raise bad("numberOfOccurrences must be positive.")
        parts.append(f"COUNT={count}")
    elif range_type == "endDate":
        try:
            end = date.fromisoformat(str(range_.get("endDate")))
        except ValueError:
            raise bad("endDate must be a date.") from None
        parts.append(f"UNTIL={end:%Y%m%d}T235959")
    elif range_type != "noEnd":
        raise bad(f"unknown range type {range_type!r}.")
    return ["RRULE:" + ";".join(parts)]
