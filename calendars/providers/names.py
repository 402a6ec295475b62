"""The registry of providers: one line each. It imports no client library, so the models
(their `provider` field's choices), pages and commands use it without loading Google's or
Microsoft's libraries; `calendars.providers.get_provider` loads a provider on first use."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext, gettext_lazy, gettext_noop


@dataclass(frozen=True)
class ProviderInfo:
    name: str  # the key in URLs, the API and the database
    label: str  # shown to people, translated by `title` ("Google Agenda" is Google Calendar)
    module: str  # the package whose `provider` implements it
    client_settings: tuple[str, ...]  # the settings that must be set for it to be offered
    # How a learner connects: "oauth" (sent to the provider's consent page) or "password" (a
    # form: server address, username, app-specific password; checked at once).
    connection: str = "oauth"
    # No push channels (its provider's `push` is None): the periodic sync polls it, and its
    # settings card says so.
    polled: bool = False

    @property
    def title(self) -> str:
        """The provider's name in the active language."""
        return gettext(self.label)

    def is_configured(self) -> bool:
        """Whether client credentials are set (else the provider shows as unavailable)."""
        return all(getattr(settings, name, "") for name in self.client_settings)


PROVIDERS: dict[str, ProviderInfo] = {
    info.name: info
    for info in (
        ProviderInfo("google", gettext_noop("Google Agenda"), "calendars.providers.google",
                     ("GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET")),
        ProviderInfo("outlook", "Outlook", "calendars.providers.outlook",
                     ("OUTLOOK_CLIENT_ID", "OUTLOOK_CLIENT_SECRET")),
        ProviderInfo("caldav", gettext_noop("CalDAV (iCloud, Fastmail, Nextcloud…)"),
                     "calendars.providers.caldav", ("CALDAV_ENABLED",), connection="password",
                     polled=True),
    )
}  # fmt: skip
PROVIDER_CHOICES = [(name, gettext_lazy(info.label)) for name, info in PROVIDERS.items()]
