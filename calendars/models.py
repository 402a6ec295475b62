from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from calendars.crypto import EncryptedTextField, UndecryptableText
from calendars.errors import UndecryptableError
from calendars.failures import Failure, failure_by_code
from calendars.providers.names import PROVIDER_CHOICES

OAUTH_STATE_LIFETIME = timedelta(minutes=10)
MISSING_SCOPE = "missing_scope"  # CalendarIntegration.reconnect_reason


class CalendarIntegration(models.Model):
    """One learner's connection to one provider's calendar account."""

    class Status(models.TextChoices):
        CONNECTED = "connected", _("Connecté")
        NEEDS_RECONNECT = "needs_reconnect", _("À reconnecter")
        ERROR = "error", _("En erreur")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="calendar_integrations",
        verbose_name=_("apprenant"),
    )
    provider = models.CharField(_("fournisseur"), max_length=16, choices=PROVIDER_CHOICES)
    account_email = models.EmailField(_("compte"), blank=True)
    account_name = models.CharField(_("nom du compte"), max_length=200, blank=True)
    scopes = models.JSONField(_("autorisations accordées"), default=list, blank=True)
    # Google: {"token", "refresh_token"}; Outlook: {"cache"} (msal's serialized token cache).
    credentials = EncryptedTextField(_("identifiants chiffrés"))
    token_expires_at = models.DateTimeField(_("expiration du jeton d'accès"), null=True, blank=True)

    import_enabled = models.BooleanField(_("import"), default=True)
    export_enabled = models.BooleanField(_("export"), default=True)
    sync_enabled = models.BooleanField(_("synchronisation automatique"), default=True)

    status = models.CharField(
        _("statut"), max_length=20, choices=Status.choices, default=Status.CONNECTED
    )
    # The failure as the learner is told it (a code of calendars.failures); `last_error` is
    # the technical detail, for staff.
    last_error_code = models.CharField(_("code de la dernière erreur"), max_length=32, blank=True)
    last_error = models.TextField(_("dernière erreur"), blank=True)
    last_error_at = models.DateTimeField(_("date de la dernière erreur"), null=True, blank=True)
    # Why the learner must reconnect, when it is not simply a lost grant: MISSING_SCOPE.
    reconnect_reason = models.CharField(max_length=32, blank=True)
    last_synced_at = models.DateTimeField(_("dernière synchronisation"), null=True, blank=True)
    connected_at = models.DateTimeField(_("connecté le"), default=timezone.now)
    updated_at = models.DateTimeField(_("modifié le"), auto_now=True)
    # Background sync: when the next periodic sync (or retry) is due; how many syncs in a row
    # failed; and a sync asked for while another ran or a push notification waits to be
    # acted on (the running sync then goes round once more).
    next_sync_at = models.DateTimeField(_("prochaine synchronisation"), null=True, blank=True)
    sync_failures = models.PositiveSmallIntegerField(_("échecs consécutifs"), default=0)
    sync_requested_at = models.DateTimeField(
        _("synchronisation demandée le"), null=True, blank=True
    )

    class Meta:
        verbose_name = _("intégration de calendrier")
        verbose_name_plural = _("intégrations de calendrier")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "provider"], name="integration_one_per_provider"
            )
        ]
        indexes = [models.Index(fields=["next_sync_at"])]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} — {self.account_email or self.user}"

    def get_credentials(self) -> dict[str, Any]:
        if isinstance(self.credentials, UndecryptableText):
            raise UndecryptableError("No configured CALENDAR_TOKEN_KEY can read this credential.")
        return json.loads(self.credentials) if self.credentials else {}

    def set_credentials(self, values: dict[str, Any]) -> None:
        self.credentials = json.dumps(values, separators=(",", ":"))

    @property
    def needs_reconnect(self) -> bool:
        return self.status == self.Status.NEEDS_RECONNECT

    @property
    def failure(self) -> Failure | None:
        """The failure recorded last, as the learner is told it; None when none was."""
        return failure_by_code(self.last_error_code) if self.last_error_code else None

    @property
    def missing_permission(self) -> bool:
        """Reconnecting means granting a permission the learner did not give (or withdrew)."""
        return self.needs_reconnect and self.reconnect_reason == MISSING_SCOPE


def _new_state() -> str:
    return secrets.token_urlsafe(32)


class OAuthState(models.Model):
    """A connect flow in progress, kept server-side: the PKCE verifier, nonce and msal's flow
    never travel through the browser. Bound to the user who started it, single-use, valid
    OAUTH_STATE_LIFETIME."""

    state = models.CharField(max_length=64, unique=True, default=_new_state)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=16, choices=PROVIDER_CHOICES)
    flow = EncryptedTextField()
    redirect_uri = models.URLField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.provider} flow of user {self.user_id}"

    def get_flow(self) -> dict[str, Any]:
        return json.loads(self.flow) if self.flow else {}

    def set_flow(self, values: dict[str, Any]) -> None:
        self.flow = json.dumps(values, separators=(",", ":"))

    @property
    def expired(self) -> bool:
        return timezone.now() - self.created_at > OAUTH_STATE_LIFETIME


class Calendar(models.Model):
    """One calendar of a connected account, as the provider lists it, with the learner's
    choices: import its events or not, and whether it receives exported formations."""

    integration = models.ForeignKey(
        CalendarIntegration, on_delete=models.CASCADE, related_name="calendars"
    )
    external_id = models.CharField(_("identifiant chez le fournisseur"), max_length=1024)
    name = models.CharField(_("nom"), max_length=255)
    color = models.CharField(_("couleur"), max_length=16, blank=True)
    time_zone = models.CharField(_("fuseau horaire"), max_length=64, blank=True)
    is_primary = models.BooleanField(_("principal"), default=False)
    can_edit = models.BooleanField(_("modifiable"), default=False)
    import_enabled = models.BooleanField(_("importé"), default=False)
    is_export_target = models.BooleanField(_("reçoit les formations"), default=False)
    # The learner's choice on the calendar page: its events are imported either way.
    shown = models.BooleanField(_("affiché dans le calendrier"), default=True)
    # Import state: Google's nextSyncToken or Graph's deltaLink once a full import ended; during
    # one, the page to resume from (pageToken / nextLink) and the generation it marks.
    sync_token = models.TextField(blank=True)
    resume_from = models.TextField(blank=True)
    generation = models.PositiveIntegerField(default=0)
    # The window of the listing the sync token continues: providers keep it (Graph's delta
    # link) or never list beyond it again (Google's instances of a series). Once today's
    # window has slid past it by CALENDAR_WINDOW_SLIDE_DAYS, the calendar is listed again.
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    last_imported_at = models.DateTimeField(_("dernier import"), null=True, blank=True)
    # When a full listing first came back empty although the calendar held events in its
    # window: they are kept until a second listing agrees (a provider's glitch is no wipe).
    empty_listing_at = models.DateTimeField(null=True, blank=True)
    # The provider sends no notifications for it (Google's generated calendars): the periodic
    # sync polls it, and no channel is asked for again.
    polled = models.BooleanField(_("sans notification (interrogé périodiquement)"), default=False)
    updated_at = models.DateTimeField(_("modifié le"), auto_now=True)

    class Meta:
        ordering = ["-is_primary", "name", "pk"]
        verbose_name = _("calendrier")
        verbose_name_plural = _("calendriers")
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "external_id"], name="calendar_unique_per_integration"
            ),
            models.UniqueConstraint(
                fields=["integration"],
                condition=models.Q(is_export_target=True),
                name="calendar_one_export_target",
            ),
            models.CheckConstraint(
                condition=~models.Q(is_export_target=True, can_edit=False),
                name="calendar_export_target_writable",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CalendarEvent(models.Model):
    """An event imported from a learner's calendar.

    Timed events keep their instants in UTC (`start`, `end`); all-day events keep the dates the
    provider gives (`start_date`, `end_date`, end exclusive) and `start`/`end` hold those
    dates' midnights in the event's zone, so one range query finds both kinds.
    """

    class Status(models.TextChoices):
        CONFIRMED = "confirmed", _("Confirmé")
        TENTATIVE = "tentative", _("Provisoire")
        CANCELLED = "cancelled", _("Annulé")

    class Response(models.TextChoices):
        NEEDS_ACTION = "needs_action", _("Pas encore répondu")
        ACCEPTED = "accepted", _("Accepté")
        TENTATIVE = "tentative", _("Peut-être")
        DECLINED = "declined", _("Refusé")

    calendar = models.ForeignKey(Calendar, on_delete=models.CASCADE, related_name="events")
    external_id = models.CharField(_("identifiant chez le fournisseur"), max_length=1024)
    ical_uid = models.CharField(_("iCalUID"), max_length=1024, blank=True)
    title = models.TextField(_("titre"), blank=True)
    description = models.TextField(_("description"), blank=True)
    location = models.TextField(_("lieu"), blank=True)
    online_url = models.URLField(_("lien de réunion en ligne"), max_length=2000, blank=True)
    start = models.DateTimeField(_("début"))
    end = models.DateTimeField(_("fin"))
    all_day = models.BooleanField(_("toute la journée"), default=False)
    start_date = models.DateField(_("premier jour"), null=True, blank=True)
    end_date = models.DateField(_("lendemain du dernier jour"), null=True, blank=True)
    time_zone = models.CharField(_("fuseau horaire"), max_length=64, blank=True)
    status = models.CharField(
        _("statut"), max_length=16, choices=Status.choices, default=Status.CONFIRMED
    )
    series_id = models.CharField(_("série"), max_length=1024, blank=True)
    change_marker = models.CharField(_("marqueur de version"), max_length=255, blank=True)
    html_link = models.URLField(_("lien chez le fournisseur"), max_length=2000, blank=True)
    # An invitation from someone else: the learner's answer (declined ones are not shown);
    # "" for the learner's own events. `busy`: it blocks their time (not shown as free).
    response = models.CharField(
        _("réponse à l'invitation"), max_length=16, choices=Response.choices, blank=True
    )
    busy = models.BooleanField(_("occupé"), default=True)
    # Full imports mark what they saw with the calendar's generation; the rest is stale.
    generation = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(_("importé le"), auto_now=True)

    class Meta:
        ordering = ["start", "pk"]
        verbose_name = _("événement importé")
        verbose_name_plural = _("événements importés")
        constraints = [
            models.UniqueConstraint(
                fields=["calendar", "external_id"], name="event_unique_per_calendar"
            ),
        ]
        indexes = [
            models.Index(fields=["calendar", "start"]),
            models.Index(fields=["end"]),
            # When learners are busy (calendars.availability): their busy events over a time,
            # read from the index alone. Measured in benchmarks/README.md ("Availability").
            models.Index(
                fields=["calendar", "start", "end"],
                condition=models.Q(busy=True)
                & ~models.Q(status="cancelled")
                & ~models.Q(response="declined"),
                name="calendarevent_busy_span",
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.external_id


class FormationExport(models.Model):
    """A formation written to a learner's calendar: the provider's event and what was sent.

    Created before the provider is asked to write, so a crash in between leaves a trace to
    resolve (Google's event id is ours to choose; an Outlook create is looked up by its
    extended property before being sent again). `fingerprint` is a digest of the last body
    written: a re-export with nothing changed sends nothing.
    """

    class State(models.TextChoices):
        ACTIVE = "active", _("Dans l'agenda")
        REMOVED = "removed", _("Retirée par l'apprenant")

    integration = models.ForeignKey(
        CalendarIntegration, on_delete=models.CASCADE, related_name="exports"
    )
    # Kept when the formation is deleted, so that its event can still be removed.
    formation = models.ForeignKey(
        "formations.Formation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("formation"),
    )
    formation_uid = models.UUIDField(_("identifiant de la formation"))
    calendar_external_id = models.CharField(_("calendrier chez le fournisseur"), max_length=1024)
    external_id = models.CharField(_("événement chez le fournisseur"), max_length=1024, blank=True)
    # Bumped whenever the event is made anew (the learner asked again for a formation they had
    # removed, or chose another calendar): the new event gets identifiers of its own.
    copy = models.PositiveSmallIntegerField(default=0)
    # A create was sent and may have succeeded without our knowing its answer.
    create_sent = models.BooleanField(default=False)
    fingerprint = models.CharField(max_length=64, blank=True)
    remote_version = models.CharField(_("version chez le fournisseur"), max_length=255, blank=True)
    state = models.CharField(_("état"), max_length=16, choices=State.choices, default=State.ACTIVE)
    last_error = models.TextField(_("dernière erreur"), blank=True)
    created_at = models.DateTimeField(_("créé le"), auto_now_add=True)
    updated_at = models.DateTimeField(_("modifié le"), auto_now=True)

    class Meta:
        verbose_name = _("formation exportée")
        verbose_name_plural = _("formations exportées")
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "formation_uid"], name="export_one_per_formation"
            ),
        ]
        indexes = [models.Index(fields=["formation_uid"])]

    def __str__(self) -> str:
        return f"{self.formation_uid} → {self.external_id or '…'}"

    @property
    def removed_by_learner(self) -> bool:
        return self.state == self.State.REMOVED


class SyncRun(models.Model):
    """One run of the sync of an integration: why, which way, what it changed, how it ended."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", _("À la demande de l'apprenant")
        PUSH = "push", _("Notification du fournisseur")
        PERIODIC = "periodic", _("Périodique")
        RETRY = "retry", _("Nouvel essai après un échec")
        CONNECT = "connect", pgettext_lazy("sync trigger", "Connexion")
        SETTINGS = "settings", _("Réglages modifiés")
        FORMATION = "formation", _("Formation modifiée")
        ADMIN = "admin", _("Équipe d'assistance")
        COMMAND = "command", _("Commande")

    class Direction(models.TextChoices):
        BOTH = "both", _("Import et export")
        IMPORT = "import", _("Import")
        EXPORT = "export", _("Export")

    integration = models.ForeignKey(
        CalendarIntegration,
        on_delete=models.CASCADE,
        related_name="sync_runs",
        verbose_name=_("intégration"),
    )
    trigger = models.CharField(_("déclencheur"), max_length=16, choices=Trigger.choices)
    direction = models.CharField(_("sens"), max_length=8, choices=Direction.choices)
    started_at = models.DateTimeField(_("début"), default=timezone.now)
    finished_at = models.DateTimeField(_("fin"), null=True, blank=True)
    created = models.PositiveIntegerField(_("ajoutés"), default=0)
    updated = models.PositiveIntegerField(_("modifiés"), default=0)
    deleted = models.PositiveIntegerField(_("supprimés"), default=0)
    # Of those, the formations written to the learner's calendar (the rest are events imported).
    formations_created = models.PositiveIntegerField(_("formations ajoutées"), default=0)
    formations_updated = models.PositiveIntegerField(_("formations mises à jour"), default=0)
    formations_deleted = models.PositiveIntegerField(_("formations retirées"), default=0)
    skipped = models.PositiveIntegerField(_("ignorés"), default=0)
    requests = models.PositiveIntegerField(_("requêtes au fournisseur"), default=0)
    # The failure as the learner is told it (a code of calendars.failures), blank when the run
    # succeeded; `error` is the technical detail, for staff.
    error_code = models.CharField(_("code d'erreur"), max_length=32, blank=True)
    error = models.TextField(_("erreur"), blank=True)
    warning = models.TextField(_("avertissement"), blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = _("synchronisation")
        verbose_name_plural = _("synchronisations")
        indexes = [
            models.Index(fields=["integration", "-started_at"]),
            models.Index(fields=["started_at"]),
            # Whether a run of an integration is open, asked by every run: without it, the
            # integration's whole history (a month of runs) was read to find none.
            models.Index(
                fields=["integration"],
                condition=models.Q(finished_at__isnull=True),
                name="syncrun_open_by_integration",
            ),
        ]

    # The provider failure that ended the run, for the caller that ran it (not saved).
    failure: Any = None

    def __str__(self) -> str:
        return f"{self.integration_id} {self.trigger} {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def succeeded(self) -> bool:
        return self.finished_at is not None and not self.error


class PushChannel(models.Model):
    """A push channel open with the provider: a Google watch channel on one calendar, or a
    Graph subscription on the whole mailbox. Only a digest of its secret (Google's channel
    token, Graph's clientState) is kept: enough to check a notification, useless to forge one."""

    integration = models.ForeignKey(
        CalendarIntegration, on_delete=models.CASCADE, related_name="channels"
    )
    calendar = models.ForeignKey(
        Calendar, on_delete=models.CASCADE, null=True, blank=True, related_name="channels"
    )
    channel_id = models.CharField(_("identifiant du canal"), max_length=255, unique=True)
    resource_id = models.CharField(_("ressource surveillée"), max_length=255, blank=True)
    secret_digest = models.CharField(max_length=64)
    expires_at = models.DateTimeField(_("expire le"))
    created_at = models.DateTimeField(_("créé le"), default=timezone.now)

    class Meta:
        verbose_name = _("canal de notification")
        verbose_name_plural = _("canaux de notification")
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return self.channel_id


class ProviderFault(models.Model):
    """A provider refuses the application itself (its client secret expired or is wrong):
    no learner can fix it, so that provider's syncs stop until an operator does. One row per
    provider; deleting it (or configuring another secret) lets them go again."""

    provider = models.CharField(
        _("fournisseur"), max_length=20, choices=PROVIDER_CHOICES, unique=True
    )
    detail = models.TextField(_("détail"))
    detected_at = models.DateTimeField(_("constaté le"), default=timezone.now)
    # Which configured secret was refused (a keyed hash, never the secret): another one set
    # in the settings lifts the fault by itself.
    secret_fingerprint = models.CharField(max_length=64, editable=False)
    # One sync is let through at this time to see whether the fault is gone.
    probe_at = models.DateTimeField(_("prochain essai"))

    class Meta:
        verbose_name = _("panne de configuration")
        verbose_name_plural = _("pannes de configuration")

    def __str__(self) -> str:
        return f"{self.get_provider_display()}: {self.detail}"


class ConflictDismissal(models.Model):
    """A learner's "je m'en occupe" for one of their events over one of their formations.
    It holds while neither moves: `fingerprint` is of both their times
    (calendars.availability.conflict_fingerprint)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conflict_dismissals"
    )
    formation = models.ForeignKey(
        "formations.Formation", on_delete=models.CASCADE, related_name="conflict_dismissals"
    )
    event = models.ForeignKey(
        CalendarEvent, on_delete=models.CASCADE, related_name="conflict_dismissals"
    )
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(_("créé le"), auto_now_add=True)

    class Meta:
        verbose_name = _("conflit écarté")
        verbose_name_plural = _("conflits écartés")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "formation", "event"], name="one_dismissal_per_conflict"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.formation_id} / {self.event_id}"
