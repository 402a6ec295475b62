"""Formats the Graph and identity parts share: dates and times as Graph writes them, ids of
extended properties, request bodies and query strings.
"""

from __future__ import annotations

import base64
import re
import zoneinfo
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sandbox.server import HTTPError, Request


def tz(iana: str) -> tzinfo:
    return UTC if iana == "UTC" else zoneinfo.ZoneInfo(iana)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def stamp(value: datetime) -> str:
    """Graph's DateTimeOffset in UTC, e.g. createdDateTime."""
    value = value.astimezone(UTC)
    if value.year < 1000:  # strftime writes such a year with fewer than four digits
        return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}0Z"
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "0Z"  # faster


def parse_datetime(text: str) -> datetime | None:
    """ISO 8601 with or without offset (naive = UTC), up to seven decimals."""
    value = (text or "").strip().replace(" ", "+")
    if not value:
        return None
    value = re.sub(r"(\.\d{6})\d+", r"\1", value)
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# --- property ids of extended properties ------------------------------------------------

_PROPERTY_TYPES = {
    t.lower(): t
    for t in (
        "String",
        "Integer",
        "Boolean",
        "SystemTime",
        "Double",
        "Long",
        "Binary",
        "Currency",
        "Float",
        "Short",
        "CLSID",
        "Object",
        "ApplicationTime",
    )
}
_PROPERTY_ID = re.compile(
    r"^\s*(\w+)\s+\{([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12})\}\s+(Name|Id)\s+(\S.*?)\s*$",
    re.I,
)


def normalize_property_id(value: Any) -> str | None:
    """`String {GUID} Name x` with the type and GUID in a canonical form, or None if invalid."""
    if not isinstance(value, str):
        return None
    match = _PROPERTY_ID.match(value)
    if not match or match[1].lower() not in _PROPERTY_TYPES:
        return None
    kind = "Name" if match[3].lower() == "name" else "Id"
    return f"{_PROPERTY_TYPES[match[1].lower()]} {{{match[2].lower()}}} {kind} {match[4]}"


def with_query(url: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    pairs += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def json_object(request: Request) -> dict[str, Any]:
    try:
        value = request.json()
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise HTTPError(400, "BadRequest", "Empty Payload. JSON content expected.")
    return value
