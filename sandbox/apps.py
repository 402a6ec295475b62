from __future__ import annotations

from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """Installed only when the sandbox is in use (config/settings.py): for its command."""

    name = "sandbox"
    label = "sandbox"
    verbose_name = "Provider sandbox"
