"""The calendar providers. A new provider is a package here (its `provider`, built from the
interface in `base.py`) plus one line in `names.PROVIDERS`; it passes the provider contract
tests (tests/calendars/providers/test_contract.py)."""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

from calendars.providers.names import PROVIDERS

if TYPE_CHECKING:
    from calendars.providers.base import Provider


@cache
def get_provider(name: str) -> Provider:
    """The provider registered as `name`, its client libraries imported on first use."""
    return import_module(PROVIDERS[name].module).provider
