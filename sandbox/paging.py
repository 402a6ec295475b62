"""What a listing keeps between its pages, so that a page costs the page, not the calendar.

A listing's first page sorts the calendar's entries; without a memory of that, every later
page tested and sorted all of them again (10,000 events in 4 or 11 pages: the calendar read
4 or 11 times). Two kinds of memory, both small and least-recently-used:

- `sorted`: a listing's sorted candidates, keyed by what its page tokens are bound to. The
  caller checks each candidate again as it takes it, so a change between pages is seen as
  if everything had been read again (sandbox/google/listing.py says why that is exact).
- `derived`: anything computed from a calendar's events, kept while the calendar has not
  changed: no save since (`Calendar.version`, the seq of its last) and as many events (tests
  and tools take events out of `Calendar.events` directly, with no save).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar

from sandbox.store import Calendar, Event, Store

T = TypeVar("T")

# A few listings at once: an import's, a test's, someone browsing the pages.
SORTED_KEPT = 8
DERIVED_KEPT = 32


@dataclass(frozen=True)
class Candidates:
    """Events in the listing's order, and their sort keys (for bisecting a page token's)."""

    keys: list[Any]
    events: list[Event]

    @classmethod
    def of(cls, events: Iterable[Event], key: Callable[[Event], Any]) -> Candidates:
        """`events` in the order of `key` (worked out once an event)."""
        pairs = sorted(((key(e), e) for e in events), key=itemgetter(0))
        return cls([k for k, _ in pairs], [e for _, e in pairs])


class ListingMemory:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._sorted: OrderedDict[Hashable, Candidates] = OrderedDict()
        self._derived: OrderedDict[Hashable, tuple[tuple[int, int], Any]] = OrderedDict()

    def sorted(
        self, key: Hashable, calendar: Calendar, build: Callable[[list[Event]], Candidates]
    ) -> Candidates:
        """The candidates kept under `key`, or `build` from the calendar's events now."""
        with self._lock:
            found = self._sorted.get(key)
            if found is not None:
                self._sorted.move_to_end(key)
                return found
        with self.store.lock:
            events = list(calendar.events.values())
        candidates = build(events)
        with self._lock:
            self._sorted[key] = candidates
            while len(self._sorted) > SORTED_KEPT:
                self._sorted.popitem(last=False)
        return candidates

    def derived(self, key: Hashable, calendar: Calendar, compute: Callable[[list[Event]], T]) -> T:
        """`compute` of the calendar's events, again only once the calendar has changed."""
        with self._lock:
            found = self._derived.get(key)
            if found is not None and found[0] == _state(calendar):
                self._derived.move_to_end(key)
                return found[1]  # type: ignore[no-any-return]
        with self.store.lock:
            state = _state(calendar)
            events = list(calendar.events.values())
        value = compute(events)
        with self._lock:
            self._derived[key] = (state, value)
            self._derived.move_to_end(key)
            while len(self._derived) > DERIVED_KEPT:
                self._derived.popitem(last=False)
        return value


def _state(calendar: Calendar) -> tuple[int, int]:
    return calendar.version, len(calendar.events)
