from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from calendars.models import CalendarIntegration


class IntegrationSettingsForm(forms.Form):
    """The product's Import / Export / Sync settings."""

    import_enabled = forms.BooleanField(
        label=_("Import"),
        required=False,
        help_text=_("Synchronise les événements du calendrier externe vers l'application"),
    )
    export_enabled = forms.BooleanField(
        label=_("Export"),
        required=False,
        help_text=_("Permet d'ajouter les formations de l'application au calendrier externe"),
    )
    sync_enabled = forms.BooleanField(
        label=_("Sync"),
        required=False,
        help_text=_("Active la synchronisation automatique"),
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
