from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiToken, Profile, time_zone_choices

# Where the organisation's learners mostly are: France and its overseas regions, its
# neighbours, Quebec and French-speaking Africa. Listed first, in this order.
COMMON_ZONES = [
    "Europe/Paris",
    "Europe/Brussels",
    "Europe/Luxembourg",
    "Europe/Zurich",
    "Europe/London",
    "America/Montreal",
    "Africa/Casablanca",
    "Africa/Abidjan",
    "Africa/Dakar",
    "America/Guadeloupe",
    "America/Martinique",
    "America/Cayenne",
    "Indian/Reunion",
    "Indian/Mayotte",
    "Pacific/Noumea",
    "Pacific/Tahiti",
    "UTC",
]
REGIONS = {
    "Europe": _("Europe"),
    "Africa": _("Afrique"),
    "America": _("Amériques"),
    "Asia": _("Asie"),
    "Atlantic": _("Océan Atlantique"),
    "Indian": _("Océan Indien"),
    "Australia": _("Australie"),
    "Pacific": _("Océan Pacifique"),
    "Antarctica": _("Antarctique"),
}


def _offset(name: str, now: datetime) -> str:
    offset = now.astimezone(zoneinfo.ZoneInfo(name)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "−"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _label(name: str, now: datetime) -> str:
    place = name.split("/", 1)[-1].replace("_", " ").replace("/", " › ")
    return f"{place} ({_offset(name, now)})"


def grouped_time_zones(now: datetime | None = None) -> list[tuple[Any, list[tuple[str, str]]]]:
    """Every zone the profile accepts, the common ones first, then by region (each once),
    labelled with the place and its offset from UTC at `now` (by default, today's)."""
    now = now or timezone.now()
    known = {name for name, _ in time_zone_choices()}
    common = [name for name in COMMON_ZONES if name in known]
    groups: dict[str, list[tuple[str, str]]] = {region: [] for region in REGIONS}
    others: list[tuple[str, str]] = []
    for name in sorted(known - set(common)):
        region = name.split("/", 1)[0]
        (groups[region] if region in groups and "/" in name else others).append(
            (name, _label(name, now))
        )
    return [
        (_("Fuseaux courants"), [(name, _label(name, now)) for name in common]),
        *((REGIONS[region], zones) for region, zones in groups.items() if zones),
        (_("Autres fuseaux"), others),
    ]


class ProfileForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ["time_zone", "language", "share_busy"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["time_zone"]
        field.choices = grouped_time_zones()
        # static/js/zone-search.js adds a search box above the list with this label; without
        # JavaScript, typing on the list jumps to a zone.
        field.widget.attrs["data-search-label"] = _("Rechercher un fuseau (ville ou région)")


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name"]
