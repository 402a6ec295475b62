"""The Calendar API as the discovery document shipped with google-api-python-client says it.

Every method in it gets a route (sandbox/google/api.py); each request is checked against its
method's parameters, and a partial response (`fields`) keeps only what was asked for.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import googleapiclient

from sandbox.google.errors import GoogleError, invalid_parameter
from sandbox.google.formats import parse_rfc3339
from sandbox.server import Request

DISCOVERY_PATH = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"
)


@functools.cache
def discovery() -> dict[str, Any]:
    return json.loads(DISCOVERY_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Method:
    id: str  # without the "calendar." prefix: "events.list"
    http_method: str
    path: str  # under servicePath: "calendars/{calendarId}/events"
    parameters: dict[str, Any]
    scopes: frozenset[str]
    request: str | None  # schema names
    response: str | None

    @property
    def endpoint(self) -> str:
        return f"google.{self.id}"

    def pattern(self) -> str:
        segments = []
        for segment in self.path.split("/"):
            match = re.fullmatch(r"\{\+?(\w+)\}", segment)
            segments.append(f"(?P<{match[1]}>[^/]+)" if match else re.escape(segment))
        return "/" + re.escape(discovery()["servicePath"]) + "/".join(segments)


@functools.cache
def methods() -> tuple[Method, ...]:
    found: list[Method] = []

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for spec in resource.get("methods", {}).values():
                found.append(
                    Method(
                        id=spec["id"].removeprefix("calendar."),
                        http_method=spec["httpMethod"],
                        path=spec["path"],
                        parameters=spec.get("parameters", {}),
                        scopes=frozenset(spec.get("scopes", [])),
                        request=(spec.get("request") or {}).get("$ref"),
                        response=(spec.get("response") or {}).get("$ref"),
                    )
                )
            walk(resource.get("resources", {}))

    walk(discovery()["resources"])
    # Literal segments first: "events/watch" must not be taken for "events/{eventId}".
    return tuple(sorted(found, key=lambda method: method.path.count("{")))


@functools.cache
def schema_fields(name: str) -> frozenset[str]:
    return frozenset(discovery()["schemas"][name]["properties"])


# Event fields kept as given in `Event.extra`; the others are computed or read-only.
EVENT_EXTRA_FIELDS = schema_fields("Event") - {
    "kind",
    "etag",
    "id",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "organizer",
    "hangoutLink",
    "recurringEventId",
    "originalStartTime",
    "privateCopy",
    "locked",
    "iCalUID",
    "summary",
    "description",
    "location",
    "start",
    "end",
    "status",
    "eventType",
    "recurrence",
    "extendedProperties",
    "conferenceData",
}


def _coerce(name: str, spec: dict[str, Any], value: str) -> Any:
    """A query parameter converted to its declared type, or a 400 as Google words it."""
    kind = spec.get("type", "string")
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", value):
            pattern = r"'-?\d+'"
            raise invalid_parameter(
                name, f"Invalid value '{value}'. Values must match the regular expression {pattern}"
            )
        number = int(value)
        low, high = spec.get("minimum"), spec.get("maximum")
        if (low is not None and number < int(low)) or (high is not None and number > int(high)):
            bounds = f"[{low if low is not None else ''}, {high if high is not None else ''}]"
            raise invalid_parameter(
                name, f"Invalid value '{value}'. Values must be within the range: {bounds}"
            )
        return number
    if kind == "boolean":
        if value.lower() not in {"true", "false"}:
            raise invalid_parameter(
                name, f"Invalid value '{value}'. Values must be one of: true, false"
            )
        return value.lower() == "true"
    if spec.get("format") == "date-time":
        parsed = parse_rfc3339(value)
        if parsed is None:
            raise invalid_parameter(
                name,
                f"Invalid value '{value}' for {name}: it must be an RFC 3339 timestamp with a "
                "time zone offset, for example 2011-06-03T10:00:00-07:00 or "
                "2011-06-03T10:00:00Z.",
            )
        return parsed
    if "enum" in spec and value not in spec["enum"]:
        raise invalid_parameter(
            name, f"Invalid value '{value}'. Values must be one of: {', '.join(spec['enum'])}"
        )
    return value


def validate(method: Method, request: Request) -> dict[str, Any]:
    """The request's parameters, typed, checked against the discovery document."""
    standard = discovery()["parameters"]
    values: dict[str, Any] = {}
    for name, given in request.query.items():
        spec = method.parameters.get(name) or standard.get(name)
        if spec is None or spec.get("location") == "path":
            raise invalid_parameter(
                name,
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query '
                f"parameter. Field '{name}' could not be found in request message.",
            )
        converted = [_coerce(name, spec, value) for value in given]
        values[name] = converted if spec.get("repeated") else converted[-1]
    for name, spec in method.parameters.items():
        if spec.get("location") == "path":
            values[name] = unquote(request.params[name])
        elif spec.get("required") and name not in values:
            raise GoogleError(400, "required", f"Required parameter: {name}", location=name)
    return values


class FieldSelector:
    """The `fields` query parameter (partial responses): "items(id,summary),nextPageToken"."""

    def __init__(self, spec: str) -> None:
        self.text = spec
        self.position = 0
        self.tree = self._list()
        if self.position != len(self.text):
            raise self._error()

    def _error(self) -> GoogleError:
        return invalid_parameter("fields", f"Invalid field selection {self.text}")

    def _list(self) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        while True:
            path = self._name().split("/")
            node = tree
            for part in path[:-1]:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
            sub: Any = None
            if self.text.startswith("(", self.position):
                self.position += 1
                sub = self._list()
                if not self.text.startswith(")", self.position):
                    raise self._error()
                self.position += 1
            node[path[-1]] = sub
            if not self.text.startswith(",", self.position):
                return tree
            self.position += 1

    def _name(self) -> str:
        match = re.compile(r"[A-Za-z0-9_*/.@$-]+").match(self.text, self.position)
        if match is None:
            raise self._error()
        self.position = match.end()
        return match.group()

    def kept_of(self, name: str) -> set[str] | None:
        """The fields kept of `name`'s value (of each of its items, for a list): None for
        all of them."""
        if "*" in self.tree:
            return None
        if name not in self.tree:
            return set()
        sub = self.tree[name]
        return None if sub is None or "*" in sub else set(sub)

    def apply(self, value: Any, tree: dict[str, Any] | None = None) -> Any:
        tree = self.tree if tree is None else tree
        if isinstance(value, list):
            return [self.apply(item, tree) for item in value]
        if not isinstance(value, dict):
            return value
        if "*" in tree:
            return value
        return {
            key: item if tree[key] is None else self.apply(item, tree[key])
            for key, item in value.items()
            if key in tree
        }
