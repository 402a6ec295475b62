from __future__ import annotations

import zoneinfo
from functools import cache

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

DEFAULT_TIME_ZONE = "Europe/Paris"


@cache
def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


class Profile(models.Model):
    """A learner's display preferences: every date is shown in `time_zone`, pages in `language`."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    time_zone = models.CharField(
        _("fuseau horaire"),
        max_length=64,
        choices=time_zone_choices,
        default=DEFAULT_TIME_ZONE,
        help_text=_("Toutes les dates vous sont affichées dans ce fuseau."),
    )
    language = models.CharField(
        _("langue"),
        max_length=8,
        choices=settings.LANGUAGES,
        default=settings.LANGUAGE_CODE,
        help_text=_("La langue des pages et des e-mails."),
    )
    # Read by the calendars app: whether staff may count this learner as busy or free.
    share_busy = models.BooleanField(
        _("partager mes disponibilités avec l'équipe de formation"),
        default=True,
        help_text=_(
            "L'équipe voit seulement si vous êtes libre ou occupé aux heures d'une formation, "
            "jamais le titre, le lieu ou le détail de vos événements."
        ),
    )

    class Meta:
        verbose_name = _("profil")
        verbose_name_plural = _("profils")

    def __str__(self) -> str:
        return str(self.user)


# Makes a leaked token recognisable (secret scanners, logs, support); not a secret itself.
API_TOKEN_MARKER = "fcal_"  # noqa: S105
API_TOKEN_PREFIX_LENGTH = len(API_TOKEN_MARKER) + 8


class ApiToken(models.Model):
    """A personal token for the JSON API (`Authorization: Bearer ...`).

    Only a SHA-256 digest is stored: the token is shown once, when it is created. A plain
    digest is enough (no salt, no slow hash) because the token is 256 random bits, not a
    password anyone could guess.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name=_("apprenant"),
    )
    name = models.CharField(
        _("nom"),
        max_length=100,
        help_text=_("Pour vous souvenir de l'usage de ce jeton, par exemple « Script agenda »."),
    )
    prefix = models.CharField(_("début du jeton"), max_length=API_TOKEN_PREFIX_LENGTH)
    digest = models.CharField(_("empreinte SHA-256"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("créé le"), default=timezone.now)
    last_used_at = models.DateTimeField(_("dernière utilisation"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("révoqué le"), null=True, blank=True)
    # The addresses it was used from, to log the first use from each new one (a stolen token
    # shows up as a new address); the oldest are dropped past SEEN_ADDRESSES_KEPT.
    seen_addresses = models.JSONField(_("adresses déjà vues"), default=list, blank=True)

    class Meta:
        verbose_name = _("jeton d'accès API")
        verbose_name_plural = _("jetons d'accès API")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


def learner_language(user_id: int) -> str:
    """The language a learner chose, for what is written for them outside a request
    (exported events, their calendar feed)."""
    language = Profile.objects.filter(user_id=user_id).values_list("language", flat=True).first()
    return language or settings.LANGUAGE_CODE


class SecurityEvent(models.Model):
    """One entry of the security log (accounts.security): what happened to whose account,
    when, from which address, and who did it when it was not the account's owner."""

    class Kind(models.TextChoices):
        SIGNED_IN = "signed_in", _("Connexion au site")
        SIGN_IN_FAILED = "sign_in_failed", _("Échec de connexion au site")
        SIGN_IN_LOCKED = "sign_in_locked", _("Connexion bloquée après trop d'échecs")
        INTEGRATION_CONNECTED = "integration_connected", _("Agenda connecté")
        INTEGRATION_RECONNECTED = "integration_reconnected", _("Agenda reconnecté")
        INTEGRATION_DISCONNECTED = "integration_disconnected", _("Agenda déconnecté")
        OAUTH_REFUSED = "oauth_refused", _("Connexion d'agenda refusée")
        GRANT_LOST = "grant_lost", _("Accès à l'agenda perdu")
        REFRESH_FAILED = "refresh_failed", _("Échec du renouvellement de l'accès à l'agenda")
        KEY_ROTATED = "key_rotated", _("Clé de chiffrement des identifiants changée")
        API_TOKEN_CREATED = "api_token_created", _("Jeton d'accès API créé")
        API_TOKEN_NEW_ADDRESS = (
            "api_token_new_address",
            _("Jeton d'accès API utilisé depuis une nouvelle adresse"),
        )
        API_TOKEN_REVOKED = "api_token_revoked", _("Jeton d'accès API révoqué")
        STAFF_ACTION = "staff_action", _("Action de l'équipe d'assistance")
        FEED_REGENERATED = "feed_regenerated", _("Adresse d'abonnement régénérée")

    occurred_at = models.DateTimeField(_("date"), default=timezone.now, db_index=True)
    kind = models.CharField(_("événement"), max_length=32, choices=Kind.choices)
    # Kept when the account goes: the log outlives what it tells of, until it is pruned.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="security_events",
        verbose_name=_("compte"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("fait par"),
        help_text=_("Rempli quand ce n'est pas le titulaire du compte (l'équipe d'assistance)."),
    )
    address = models.GenericIPAddressField(_("adresse IP"), null=True, blank=True)
    service = models.CharField(_("service"), max_length=64, blank=True)
    account = models.CharField(_("compte externe"), max_length=254, blank=True)
    detail = models.CharField(_("détail"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("événement de sécurité")
        verbose_name_plural = _("journal de sécurité")
        ordering = ["-occurred_at", "-pk"]
        indexes = [models.Index(fields=["user", "-occurred_at"], name="security_by_user")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.occurred_at:%Y-%m-%d %H:%M})"
