"""The registry of providers: one line each. It imports no client library, so the models
(their `provider` field's choices), pages and commands use it without loading Google's or
Microsoft's libraries; `calendars.providers.get_provider` loads a provider on first use."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ProviderInfo:
    name: str  # the key in URLs, the API and the database
    title: str  # shown to people
    module: str  # the package whose `provider` implements it
    client_settings: tuple[str, ...]  # the settings that must be set for it to be offered

    def is_configured(self) -> bool:
        """Whether client credentials are set (else the provider shows as unavailable)."""
        return all(getattr(settings, name, "") for name in self.client_settings)


PROVIDERS: dict[str, ProviderInfo] = {
    info.name: info
    for info in (
        ProviderInfo("google", "Google Agenda", "calendars.providers.google",
                     ("GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET")),
        ProviderInfo("outlook", "Outlook", "calendars.providers.outlook",
                     ("OUTLOOK_CLIENT_ID", "OUTLOOK_CLIENT_SECRET")),
    )
}  # fmt: skip
PROVIDER_CHOICES = [(name, info.title) for name, info in PROVIDERS.items()]
