"""Steps of the social sign-in pipeline (settings.SOCIAL_AUTH_PIPELINE)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from social_core.exceptions import AuthPolicyError


class StaffNotLinkable(AuthPolicyError):
    """A provider's e-mail claim names a staff account: never linked, never duplicated."""


def forget_provider_tokens(*, social: Any = None, **kwargs: Any) -> None:
    """Keep nothing but the account's identity from a sign-in.

    Signing in proves who the learner is; it never grants calendar access, which is a separate,
    explicit connection. social_core's own `load_extra_data` step (left out of the pipeline)
    would store the access and refresh tokens; this step makes sure none are kept even if an
    earlier version of the pipeline stored some.
    """
    if social is not None and social.extra_data:
        social.extra_data = {}
        social.save(update_fields=["extra_data"])


def associate_by_verified_email(
    *,
    backend: Any,
    details: dict[str, Any],
    response: dict[str, Any],
    user: Any = None,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """Link a first sign-in to the existing learner with that e-mail, only if it is verified.

    Replaces social_core's `associate_by_email`, which trusts any address: Microsoft's `mail`
    attribute can be set by a tenant's administrator to anyone's address, so only Google's
    `email_verified` claim is trusted here. Others get their own account on first sign-in.

    Only learners are linked: a staff or superuser account is never taken over through a
    provider's claim (a Workspace administrator controls the addresses of their domain). Such
    a sign-in is refused rather than given a second account with the same address.
    """
    if user is not None:
        return None
    email = (details.get("email") or "").strip()
    if not email or backend.name != "google-oauth2" or response.get("email_verified") is not True:
        return None
    matches = list(get_user_model().objects.filter(email__iexact=email, is_active=True)[:2])
    if len(matches) != 1:
        return None
    if matches[0].is_staff or matches[0].is_superuser:
        raise StaffNotLinkable(backend)
    return {"user": matches[0], "is_new": False}
