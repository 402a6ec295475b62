from __future__ import annotations

from django import forms
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
