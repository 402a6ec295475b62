"""The catalogue of failures a learner can meet, one stable code each: the sentence they read
(in their language: what happened, what to do next), the action that helps, and whether
waiting helps (temporary) or not (permanent).

Pages, the API (`{"error": {"code", "message"}}`, and the codes of integrations and runs) and
the admin all say a failure through it. The technical detail stays with staff: SyncRun.error,
CalendarIntegration.last_error and the logs; a run and an integration also keep the code
(`error_code`, `last_error_code`), blank when none was recorded.

A Refused carries one of these codes; where the flow knows more (the organisation to ask, the
permission left unticked), its sentence may say more than the catalogue's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from calendars.errors import (
    AppCredentialsRejected,
    AuthorizationDenied,
    CredentialsUnreadable,
    LockTimeout,
    ProviderError,
    RateLimited,
    ReconnectRequired,
    Refused,
    ScopeMissing,
    SyncTokenExpired,
    UndecryptableError,
)


class Action(StrEnum):
    """What the learner can do about a failure."""

    NONE = ""  # nothing: it resumes by itself, or the team must act
    RETRY = "retry"  # sync again now
    RECONNECT = "reconnect"  # give their consent again
    ALLOW = "allow"  # grant just the permission that is missing
    REFRESH = "refresh"  # list their calendars again
    CHOOSE = "choose"  # choose another calendar in the settings
    CONNECT = "connect"  # start connecting again

    @property
    def label(self) -> str | Promise:
        return ACTION_LABELS.get(self, "")

    @property
    def reconnects(self) -> bool:
        """Only a new consent helps (the pages' Reconnect or Allow button)."""
        return self in (Action.RECONNECT, Action.ALLOW)


ACTION_LABELS: dict[Action, Promise] = {
    Action.RETRY: _("Réessayer"),
    Action.RECONNECT: _("Reconnecter"),
    Action.ALLOW: _("Autoriser l'accès à la liste de mes agendas"),
    Action.REFRESH: _("Actualiser la liste des calendriers"),
    Action.CHOOSE: _("Choisir un autre calendrier"),
    Action.CONNECT: _("Recommencer"),
}


@dataclass(frozen=True)
class Failure:
    code: str
    message: Promise  # lazy: translated when shown, in the learner's language
    action: Action = Action.NONE
    permanent: bool = False  # waiting does not help: the learner (or the team) must act

    def __str__(self) -> str:
        return str(self.message)

    @property
    def stops_syncs(self) -> bool:
        """No sync can run until the learner gives their consent again or the team acts:
        asking for one now is no use."""
        return self.permanent and self.action in (Action.NONE, Action.RECONNECT, Action.ALLOW)


def _catalogue(*failures: Failure) -> dict[str, Failure]:
    return {failure.code: failure for failure in failures}


# Codes are stable: clients of the API and stored rows depend on them. The API has returned
# `provider_error`, `needs_reconnect`, `service_unavailable` and the Refused codes since
# before the catalogue.
FAILURES: dict[str, Failure] = _catalogue(
    # --- a sync, or any call to the provider ---
    Failure(
        "provider_error",
        _(
            "Le service de votre agenda n'a pas répondu comme prévu ; c'est en général "
            "passager. Réessayez dans un instant."
        ),
        Action.RETRY,
    ),
    Failure(
        "rate_limited",
        _(
            "Le service de votre agenda reçoit trop de demandes et nous demande de patienter. "
            "Réessayez un peu plus tard."
        ),
        Action.RETRY,
    ),
    Failure(
        "needs_reconnect",
        _(
            "L'accès a été retiré ou a expiré. Reconnectez ce calendrier : vos réglages sont "
            "conservés."
        ),
        Action.RECONNECT,
        permanent=True,
    ),
    Failure(
        "missing_scope",
        _(
            "Vous n'avez pas autorisé l'accès à la liste de vos agendas : autorisez-le pour "
            "choisir et synchroniser vos agendas."
        ),
        Action.ALLOW,
        permanent=True,
    ),
    Failure(
        "undecryptable",
        _(
            "Votre connexion enregistrée ne peut plus être lue de notre côté. Reconnectez ce "
            "calendrier : vos réglages sont conservés."
        ),
        Action.RECONNECT,
        permanent=True,
    ),
    Failure(
        "service_unavailable",
        _(
            "Le service est momentanément indisponible, à cause d'un réglage de notre côté que "
            "l'équipe doit corriger. Vous n'avez rien à faire : la synchronisation reprendra "
            "d'elle-même."
        ),
        permanent=True,
    ),
    Failure(
        "calendar_gone",
        _(
            "Un de vos calendriers n'est plus accessible : il a été supprimé, ou n'est plus "
            "partagé avec vous. Actualisez la liste de vos calendriers."
        ),
        Action.REFRESH,
        permanent=True,
    ),
    Failure(
        "calendar_read_only",
        _(
            "Le calendrier qui reçoit vos formations est en lecture seule : choisissez-en un "
            "autre dans les réglages."
        ),
        Action.CHOOSE,
        permanent=True,
    ),
    Failure(
        "export_failed",
        _(
            "Certaines formations n'ont pas pu être ajoutées à votre agenda. Réessayez dans un "
            "instant."
        ),
        Action.RETRY,
    ),
    Failure(
        "export_pending",
        _("L'export n'a pas pu aboutir pour l'instant ; il sera repris automatiquement."),
    ),
    Failure(
        "sync_in_progress",
        _("Une synchronisation de cet agenda est en cours ; réessayez dans un instant."),
    ),
    Failure(
        "interrupted",
        _("La synchronisation a été interrompue avant la fin. Réessayez."),
        Action.RETRY,
    ),
    Failure(
        "unknown",
        _(
            "La synchronisation n'a pas abouti, pour une raison que nous n'avons pas su "
            "identifier. Réessayez ; si cela se reproduit, prévenez l'équipe de formation."
        ),
        Action.RETRY,
    ),
    # --- connecting ---
    Failure("unavailable", _("Ce fournisseur n'est pas configuré."), permanent=True),
    Failure(
        "invalid_state",
        _("Cette demande de connexion est inconnue ou a déjà servi. Recommencez."),
        Action.CONNECT,
        permanent=True,
    ),
    Failure(
        "expired_state",
        _("Cette demande de connexion a expiré. Recommencez."),
        Action.CONNECT,
        permanent=True,
    ),
    Failure(
        "denied",
        _("Le fournisseur a refusé la connexion. Recommencez."),
        Action.CONNECT,
        permanent=True,
    ),
    Failure(
        "wrong_password",
        _(
            "Le serveur a refusé cet identifiant ou ce mot de passe : rien n'a été connecté. "
            "Vérifiez-les ; chez iCloud et Fastmail, utilisez un mot de passe d'application, "
            "pas celui de votre compte."
        ),
        Action.CONNECT,
        permanent=True,
    ),
    Failure(
        "not_caldav",
        _(
            "Cette adresse ne répond pas comme un serveur d'agenda CalDAV : rien n'a été "
            "connecté. Vérifiez-la (par exemple https://caldav.icloud.com) ou choisissez votre "
            "service dans la liste."
        ),
        Action.CONNECT,
        permanent=True,
    ),
    Failure(
        "admin_approval_required",
        _(
            "Votre organisation doit d'abord approuver notre application : demandez-le à son "
            "administrateur Microsoft 365, puis connectez votre agenda."
        ),
        permanent=True,
    ),
    # --- a formation sent to the learner's calendar ---
    Failure("not_enrolled", _("Vous n'êtes pas inscrit à cette formation."), permanent=True),
    Failure("formation_cancelled", _("Cette formation a été annulée."), permanent=True),
    Failure(
        "no_target_calendar",
        _("Choisissez d'abord, dans les paramètres, le calendrier qui reçoit vos formations."),
        Action.CHOOSE,
        permanent=True,
    ),
)
UNKNOWN = FAILURES["unknown"]


def failure_by_code(code: str | None) -> Failure:
    """The catalogue's entry for a stored code; blank (nothing recorded, or a row older than
    the codes) and unknown codes are `unknown`."""
    return FAILURES.get(code or "", UNKNOWN)


def failure_of(error: BaseException, *, exporting: bool = False) -> Failure:
    """What `error` means for the learner. `exporting`: it was answered to a write into the
    calendar that receives their formations."""
    code = getattr(error, "code", "")
    if isinstance(code, str) and code in FAILURES:  # a Refused, or a code recorded earlier
        return FAILURES[code]
    if isinstance(error, LockTimeout):
        return FAILURES["sync_in_progress"]
    if isinstance(error, UndecryptableError | CredentialsUnreadable):
        return FAILURES["undecryptable"]
    if isinstance(error, ScopeMissing):
        return FAILURES["missing_scope"]
    if isinstance(error, ReconnectRequired):
        return FAILURES["needs_reconnect"]
    if isinstance(error, AppCredentialsRejected):
        return FAILURES["service_unavailable"]
    if isinstance(error, AuthorizationDenied):
        return FAILURES["denied"]
    if isinstance(error, RateLimited):
        return FAILURES["rate_limited"]
    if not isinstance(error, ProviderError):
        return UNKNOWN
    if not error.permanent or isinstance(error, SyncTokenExpired):
        # 5xx, timeouts, no answer, an answer that could not be read
        return FAILURES["export_failed" if exporting else "provider_error"]
    if error.status == 403:  # a write refused: the calendar is someone else's to edit
        return FAILURES["calendar_read_only" if exporting else "calendar_gone"]
    if error.status in (404, 410):
        return FAILURES["calendar_gone"]
    return FAILURES["export_failed" if exporting else "unknown"]


def refused(code: str, message: Any = None) -> Refused:
    """A Refused with the catalogue's sentence for `code`, or a more precise `message`."""
    return Refused(message if message is not None else FAILURES[code].message, code=code)
