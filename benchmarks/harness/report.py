"""What the benchmarks print: progress on stderr, the machine, tables, targets met or missed."""

from __future__ import annotations

import os
import platform
import sys


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_heading(title: str) -> None:
    """`title`, then the machine and the versions the figures were measured with."""
    import django

    print(title)
    print(f"  Python {platform.python_version()}, Django {django.get_version()}, "
          f"{os.cpu_count()} CPUs, {platform.platform()}")  # fmt: skip


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns aligned, the first two on the left (labels), the others on the right."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join((f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}") for i, w in enumerate(widths))
    out = [line.format(*headers), "  ".join("-" * w for w in widths)]
    out += [line.format(*row) for row in rows]
    return "\n".join("  " + r for r in out)


Check = tuple[str, str, bool]  # what the target is, the figure, whether it is met


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_checks(checks: list[Check]) -> None:
    width = max(len(label) for label, _, _ in checks)
    for label, value, ok in checks:
        print(f"  {verdict(ok):<6}  {label:<{width}}  {value}")


def print_tally(checks: list[Check]) -> None:
    missed = sum(not ok for _, _, ok in checks)
    print(f"\n{len(checks) - missed} of {len(checks)} targets met" +
          (f", {missed} MISSED" if missed else "") + ".")  # fmt: skip
