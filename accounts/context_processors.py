from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def sign_in_providers(request: HttpRequest) -> dict[str, object]:
    """Which "Sign in with ..." buttons to show: only providers whose credentials are set."""
    providers = []
    if settings.GOOGLE_CLIENT_ID and settings.GOOGLE_CLIENT_SECRET:
        providers.append(("google-oauth2", "Google"))
    if settings.OUTLOOK_CLIENT_ID and settings.OUTLOOK_CLIENT_SECRET:
        providers.append(("microsoft-graph", "Microsoft"))
    return {"sign_in_providers": providers}
