"""The calendar providers. A new provider is a module here plus one line in PROVIDERS."""

from __future__ import annotations

from calendars.providers.base import Provider
from calendars.providers.google import GoogleProvider
from calendars.providers.outlook import OutlookProvider

PROVIDERS: dict[str, Provider] = {
    "google": GoogleProvider(),
    "outlook": OutlookProvider(),
}
PROVIDER_CHOICES = [(name, provider.title) for name, provider in PROVIDERS.items()]


def get_provider(name: str) -> Provider:
    return PROVIDERS[name]
