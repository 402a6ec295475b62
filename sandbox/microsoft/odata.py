"""OData query options as Graph reads them: $filter, $orderby, $expand of extended
properties, $top and $skip, and the time window of a calendar view.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.microsoft.formats import normalize_property_id, parse_datetime
from sandbox.server import HTTPError, Request
from sandbox.store import Event


def odata(request: Request, name: str) -> str | None:
    """An OData system query option, with or without `$`, in any case."""
    for key, values in request.query.items():
        if key.lower().lstrip("$") == name and values:
            return values[-1]
    return None


def odata_int(request: Request, name: str) -> int | None:
    value = odata(request, name)
    if value is None:
        return None
    if not value.isdigit():
        raise HTTPError(400, "BadRequest", f"Invalid value '{value}' for ${name}.")
    return int(value)


def window(request: Request) -> tuple[datetime, datetime]:
    args = {k.lower(): v[-1] for k, v in request.query.items() if v}
    raw_start, raw_end = args.get("startdatetime"), args.get("enddatetime")
    if not raw_start or not raw_end:
        raise HTTPError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window "
            "specified by the query string parameters StartDateTime and "
            "EndDateTime.",
        )
    start, end = parse_datetime(raw_start), parse_datetime(raw_end)
    if start is None or end is None:
        name, value = ("StartDateTime", raw_start) if start is None else ("EndDateTime", raw_end)
        raise HTTPError(
            400, "ErrorInvalidParameter", f"The value '{value}' of parameter '{name}' is invalid."
        )
    return start, end


def link(request: Request, base: str, overrides: dict[str, str]) -> str:
    pairs = [
        (k, v)
        for k, values in request.query.items()
        for v in values
        if k.lower().lstrip("$") not in overrides
    ]
    pairs += [(f"${k}", v) for k, v in overrides.items()]
    return f"{base}{request.path}?{urlencode(pairs, quote_via=quote, safe="$',:()@")}"


def parse_expand(text: str) -> list[str]:
    ids: list[str] = []
    for part in re.split(r",(?![^()]*\))", text):
        part = part.strip()
        match = re.fullmatch(
            r"(?i:singleValueExtendedProperties)\s*\(\s*\$?(?i:filter)\s*=\s*"
            r"(.+)\)",
            part,
            re.S,
        )
        if match:
            found = re.findall(r"(?i:id)\s+(?i:eq)\s+'((?:[^']|'')*)'", match[1])
            if not found:
                raise HTTPError(400, "BadRequest", f"Invalid $expand clause '{part}'.")
            for value in found:
                key = normalize_property_id(value.replace("''", "'"))
                if key is None:
                    raise HTTPError(
                        400,
                        "ErrorInvalidProperty",
                        f"The extended property id '{value}' is not valid.",
                    )
                ids.append(key)
        elif part.lower() in {
            "attachments",
            "calendar",
            "extensions",
            "instances",
            "multivalueextendedproperties",
        }:
            continue
        else:
            raise HTTPError(
                400,
                "BadRequest",
                f"Parsing OData Select and Expand failed: "
                f"Could not find a property named '{part}'.",
            )
    return ids


ORDER_KEYS: dict[str, Callable[[Event], Any]] = {
    "start/datetime": lambda e: e.start_utc(),
    "end/datetime": lambda e: e.end_utc(),
    "subject": lambda e: e.title.lower(),
    "createddatetime": lambda e: e.created,
    "lastmodifieddatetime": lambda e: e.updated,
    "icaluid": lambda e: e.ical_uid,
}


class FilterParser:
    """The part of OData $filter the sandbox understands, enough for what an app sends:

    `singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')`,
    `<property> eq|ne|gt|ge|lt|le <literal>` on simple and `start/dateTime`-style properties,
    combined with `and`, `or`, `not` and parentheses. Anything else is a 400, as Graph says
    for a filter it cannot parse.
    """

    TOKEN = re.compile(
        r"\s*(?:(?P<str>'(?:[^']|'')*')"
        r"|(?P<date>\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)"
        r"|(?P<sym>[():,])|(?P<word>[^\s():,']+))"
    )
    FIELDS = {
        "subject",
        "icaluid",
        "type",
        "transactionid",
        "seriesmasterid",
        "isallday",
        "iscancelled",
        "showas",
        "sensitivity",
        "importance",
        "id",
        "start/datetime",
        "end/datetime",
        "isorganizer",
        "isonlinemeeting",
        "lastmodifieddatetime",
        "createddatetime",
    }

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            match = self.TOKEN.match(text, position)
            if not match or match.end() == position:
                if text[position:].strip():
                    raise self.error()
                break
            kind = match.lastgroup or ""
            self.tokens.append((kind, match[kind]))
            position = match.end()
        self.position = 0

    def error(self) -> HTTPError:
        return HTTPError(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The query filter contains one or more invalid nodes.",
        )

    def peek(self) -> str:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise self.error()
        token = self.tokens[self.position]
        if expected is not None and token[1].lower() != expected:
            raise self.error()
        self.position += 1
        return token

    def parse(self) -> Callable[[Event, Callable[[], dict[str, Any]]], bool]:
        predicate = self.parse_or()
        if self.position != len(self.tokens):
            raise self.error()
        return predicate

    def parse_or(self) -> Callable[..., bool]:
        left = self.parse_and()
        while self.peek().lower() == "or":
            self.take()
            right, previous = self.parse_and(), left
            left = lambda e, j, a=previous, b=right: a(e, j) or b(e, j)  # noqa: E731
        return left

    def parse_and(self) -> Callable[..., bool]:
        left = self.parse_not()
        while self.peek().lower() == "and":
            self.take()
            right, previous = self.parse_not(), left
            left = lambda e, j, a=previous, b=right: a(e, j) and b(e, j)  # noqa: E731
        return left

    def parse_not(self) -> Callable[..., bool]:
        if self.peek().lower() == "not":
            self.take()
            inner = self.parse_not()
            return lambda e, j: not inner(e, j)
        if self.peek() == "(":
            self.take("(")
            inner = self.parse_or()
            self.take(")")
            return inner
        return self.parse_comparison()

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "date":
            return parse_datetime(value)
        low = value.lower()
        if low in {"true", "false"}:
            return low == "true"
        if low == "null":
            return None
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            parsed = parse_datetime(value)
            if parsed is None:
                raise self.error() from None
            return parsed

    def parse_comparison(self) -> Callable[..., bool]:
        kind, name = self.take()
        if kind != "word":
            raise self.error()
        if name.lower() == "singlevalueextendedproperties/any":
            return self.parse_any()
        if name.lower() not in self.FIELDS:
            raise HTTPError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named "
                f"'{name}' on type 'Microsoft.OutlookServices.Event'.",
            )
        operator = self.take()[1].lower()
        if operator not in {"eq", "ne", "gt", "ge", "lt", "le"}:
            raise self.error()
        expected = self.literal()
        path = name.split("/")

        def compare(event: Event, rendered: Callable[[], dict[str, Any]]) -> bool:
            value: Any = rendered()
            for part in path:
                key = (
                    next((k for k in value if k.lower() == part.lower()), None)
                    if isinstance(value, dict)
                    else None
                )
                value = value.get(key) if key is not None else None
            actual, wanted = value, expected
            if isinstance(wanted, datetime) or path[-1].lower().endswith("datetime"):
                actual = parse_datetime(str(actual)) if actual is not None else None
                wanted = wanted if isinstance(wanted, datetime) else parse_datetime(str(wanted))
            if operator == "eq":
                return bool(actual == wanted)
            if operator == "ne":
                return bool(actual != wanted)
            if actual is None or wanted is None:
                return False
            try:
                return bool(
                    {
                        "gt": actual > wanted,
                        "ge": actual >= wanted,
                        "lt": actual < wanted,
                        "le": actual <= wanted,
                    }[operator]
                )
            except TypeError:
                return False

        return compare

    def parse_any(self) -> Callable[..., bool]:
        self.take("(")
        variable = self.take()[1]
        self.take(":")
        conditions: dict[str, str] = {}
        while True:
            _, target = self.take()
            prefix, _, attribute = target.partition("/")
            if prefix != variable or attribute.lower() not in {"id", "value"}:
                raise self.error()
            self.take("eq")
            kind, value = self.take()
            if kind != "str":
                raise self.error()
            conditions[attribute.lower()] = value[1:-1].replace("''", "'")
            if self.peek().lower() != "and":
                break
            self.take()
        self.take(")")
        if "id" not in conditions:
            raise self.error()
        key = normalize_property_id(conditions["id"])
        if key is None:
            raise HTTPError(
                400,
                "ErrorInvalidProperty",
                f"The extended property id '{conditions['id']}' is not valid.",
            )
        wanted = conditions.get("value")

        def matches(event: Event, rendered: Callable[[], dict[str, Any]]) -> bool:
            if key not in event.private_properties:
                return False
            return wanted is None or event.private_properties[key] == wanted

        return matches
