from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from calendars.models import CalendarIntegration


class IntegrationSettingsForm(forms.Form):
    """The three settings of a connection (the earlier product's Import / Export / Sync),
    named by what they do for the learner."""

    import_enabled = forms.BooleanField(
        label=_("Importer mes événements"),
        required=False,
        help_text=_(
            "Les événements des calendriers cochés ci-dessous s'affichent dans votre calendrier, "
            "ici."
        ),
    )
    # On: every formation of the learner's, kept up to date. Off: only those the learner adds
    # from a formation's page (kept up to date too); turning it off offers to take them out.
    export_enabled = forms.BooleanField(
        label=_("Ajouter mes formations"),
        required=False,
        help_text=_(
            "Toutes vos formations sont ajoutées au calendrier qui les reçoit et tenues à jour. "
            "Décoché : seulement celles que vous ajoutez depuis leur page."
        ),
    )
    sync_enabled = forms.BooleanField(
        label=_("Synchronisation automatique"),
        required=False,
        help_text=_(
            "Vos calendriers sont relus d'eux-mêmes, dès qu'ils changent. Décoché : seulement "
            "quand vous cliquez sur « Synchroniser maintenant »."
        ),
    )

    @classmethod
    def for_integration(cls, integration: CalendarIntegration | None) -> IntegrationSettingsForm:
        if integration is None:
            return cls()
        prefix = integration.provider
        return cls(
            prefix=prefix,
            initial={
                "import_enabled": integration.import_enabled,
                "export_enabled": integration.export_enabled,
                "sync_enabled": integration.sync_enabled,
            },
        )


# The servers offered by name; "other" takes the address the learner types. Both find the
# account's calendars from their root (current-user-principal, RFC 5397); Fastmail's:
# https://www.fastmail.com/help/technical/servernamesandports.html
CALDAV_PRESETS = {
    "icloud": ("iCloud", "https://caldav.icloud.com"),
    "fastmail": ("Fastmail", "https://caldav.fastmail.com/"),
}


class CalDAVConnectForm(forms.Form):
    """A CalDAV account: its server (a preset or an address), a username and an app-specific
    password. The password is never shown again, not even when the form comes back with an
    error."""

    server = forms.ChoiceField(label=_("Votre service"), widget=forms.RadioSelect)
    url = forms.URLField(
        label=_("Adresse du serveur CalDAV"),
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text=_(
            "Seulement pour « Autre serveur » : l'adresse CalDAV que donne votre service, par "
            "exemple https://cloud.example.org/remote.php/dav pour Nextcloud."
        ),
    )
    username = forms.CharField(
        label=_("Identifiant"),
        max_length=254,
        help_text=_("En général votre adresse e-mail chez ce service (iCloud : votre Apple ID)."),
        widget=forms.TextInput(attrs={"autocomplete": "username", "spellcheck": "false"}),
    )
    password = forms.CharField(
        label=_("Mot de passe d'application"),
        max_length=500,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}, render_value=False),
        help_text=_(
            "Pas le mot de passe de votre compte : un mot de passe créé pour cette connexion. "
            "iCloud : account.apple.com › Connexion et sécurité › Mots de passe pour app. "
            "Fastmail : Paramètres › Confidentialité et sécurité › Mots de passe d'application."
        ),
    )

    def __init__(self, *args: Any, demo_url: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.presets = dict(CALDAV_PRESETS)
        if demo_url:
            label = _("Serveur de démonstration (local)")
            if settings.CALDAV_DEMO_USERNAME:
                label = _(
                    "Serveur de démonstration (local) : identifiant %(username)s, mot de passe "
                    "%(password)s"
                ) % {
                    "username": settings.CALDAV_DEMO_USERNAME,
                    "password": settings.CALDAV_DEMO_PASSWORD,
                }
            self.presets["demo"] = (str(label), demo_url)
        self.fields["server"].choices = [
            *((key, label) for key, (label, _url) in self.presets.items()),
            ("other", _("Autre serveur (Nextcloud, Zimbra, Synology…)")),
        ]
        self.fields["server"].initial = "demo" if demo_url else "icloud"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        server = data.get("server")
        if server in self.presets:
            data["url"] = self.presets[server][1]
        elif server == "other" and not data.get("url"):
            self.add_error("url", _("Indiquez l'adresse CalDAV de votre service."))
        return data
