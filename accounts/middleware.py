from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from social_core.exceptions import AuthCanceled
from social_django.middleware import SocialAuthExceptionMiddleware

from accounts.models import Profile
from accounts.pipeline import StaffNotLinkable


def preferred_language(request: HttpRequest, profile_language: str | None) -> str:
    """The learner's own choice, then the language cookie, then French.

    The browser's Accept-Language is deliberately not consulted: the product is French first
    and a learner who wants English picks it once.
    """
    supported = dict(settings.LANGUAGES)
    for candidate in (profile_language, request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)):
        if candidate in supported:
            return candidate
    return settings.LANGUAGE_CODE


class PreferencesMiddleware:
    """Activates the learner's language and time zone for the whole request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = time_zone = None
        if request.user.is_authenticated:
            try:
                # No query when the sign-in backend read it with the user (accounts.backends).
                profile = request.user.profile
            except Profile.DoesNotExist:
                pass
            else:
                language, time_zone = profile.language, profile.time_zone

        language = preferred_language(request, language)
        translation.activate(language)
        request.LANGUAGE_CODE = language
        try:
            timezone.activate(zoneinfo.ZoneInfo(time_zone or settings.TIME_ZONE))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.activate(zoneinfo.ZoneInfo(settings.TIME_ZONE))
        try:
            response = self.get_response(request)
        finally:
            timezone.deactivate()
        patch_vary_headers(response, ("Cookie",))
        response.headers.setdefault("Content-Language", language)
        return response


class SocialSignInErrorsMiddleware(SocialAuthExceptionMiddleware):
    """A failed "Sign in with ..." ends on the login page with a message in the learner's
    language, never an error page; the provider's own wording (which may quote its response)
    is logged, not shown."""

    def get_message(self, request: HttpRequest, exception: Exception) -> str:
        provider = getattr(getattr(request, "backend", None), "title", "") or _("le fournisseur")
        if isinstance(exception, AuthCanceled):
            return _("La connexion avec %(provider)s a été annulée.") % {"provider": provider}
        if isinstance(exception, StaffNotLinkable):
            return _(
                "Cette adresse est celle d'un compte de l'équipe : connectez-vous avec votre "
                "mot de passe."
            )
        return _(
            "La connexion avec %(provider)s n'a pas abouti. "
            "Réessayez ou utilisez votre mot de passe."
        ) % {"provider": provider}
