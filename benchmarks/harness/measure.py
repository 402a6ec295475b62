"""Statements counted, median and percentile."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

# What Django's CaptureQueriesContext also logs for transactions.
TRANSACTION_MARKERS = ("BEGIN", "COMMIT", "ROLLBACK")


class QueryCounter:
    """Counts the statements Django sends (connection.execute_wrapper), by leading verb."""

    def __init__(self) -> None:
        self.verbs: Counter[str] = Counter()

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                 context: Any) -> Any:  # fmt: skip
        self.verbs[(sql.lstrip().split(None, 1) or ["?"])[0].upper()] += 1
        return execute(sql, params, many, context)

    @property
    def statements(self) -> int:
        return sum(self.verbs.values())


def statements(captured: Any) -> list[str]:
    """The SQL a CaptureQueriesContext saw, transaction markers left out."""
    return [q["sql"] for q in captured.captured_queries if q["sql"] not in TRANSACTION_MARKERS]


def middle[T](items: Sequence[T], key: Callable[[T], float]) -> T:
    """The median item by `key` (the lower of the two middle ones for an even count)."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
