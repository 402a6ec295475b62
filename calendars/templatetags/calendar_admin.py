"""What the admin shows on every page: the providers that refuse the application for now."""

from __future__ import annotations

from django import template

from calendars.models import ProviderFault
from calendars.services.faults import provider_faults

register = template.Library()


@register.simple_tag
def calendar_provider_faults() -> list[ProviderFault]:
    return list(provider_faults().values())
