"""Windows time zone names (which Outlook and Graph use) and their IANA equivalents.

From CLDR's windowsZones table, for the zones our learners and their calendars are in; an
IANA name passes through unchanged. Used by the Outlook provider and by the sandbox.
"""

from __future__ import annotations

import zoneinfo

WINDOWS_TO_IANA = {
    "UTC": "UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kyiv",
    "GTB Standard Time": "Europe/Bucharest",
    "Russian Standard Time": "Europe/Moscow",
    "Turkey Standard Time": "Europe/Istanbul",
    "Morocco Standard Time": "Africa/Casablanca",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Egypt Standard Time": "Africa/Cairo",
    "Israel Standard Time": "Asia/Jerusalem",
    "Arab Standard Time": "Asia/Riyadh",
    "Arabian Standard Time": "Asia/Dubai",
    "Mauritius Standard Time": "Indian/Mauritius",
    "India Standard Time": "Asia/Kolkata",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "W. Australia Standard Time": "Australia/Perth",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "Central Pacific Standard Time": "Pacific/Guadalcanal",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Central Standard Time": "America/Chicago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Eastern Standard Time": "America/New_York",
    "SA Pacific Standard Time": "America/Bogota",
    "Atlantic Standard Time": "America/Halifax",
    "SA Western Standard Time": "America/La_Paz",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "SA Eastern Standard Time": "America/Cayenne",
}
IANA_TO_WINDOWS = {iana: windows for windows, iana in WINDOWS_TO_IANA.items()} | {
    "Etc/UTC": "UTC",
    "Etc/GMT": "UTC",
    "GMT": "UTC",
    "Europe/Dublin": "GMT Standard Time",
    "Europe/Lisbon": "GMT Standard Time",
    "Europe/Brussels": "Romance Standard Time",
    "Europe/Copenhagen": "Romance Standard Time",
    "Europe/Madrid": "Romance Standard Time",
    "Europe/Amsterdam": "W. Europe Standard Time",
    "Europe/Luxembourg": "W. Europe Standard Time",
    "Europe/Monaco": "W. Europe Standard Time",
    "Europe/Oslo": "W. Europe Standard Time",
    "Europe/Rome": "W. Europe Standard Time",
    "Europe/Stockholm": "W. Europe Standard Time",
    "Europe/Vienna": "W. Europe Standard Time",
    "Europe/Zurich": "W. Europe Standard Time",
    "Europe/Prague": "Central Europe Standard Time",
    "Europe/Kiev": "FLE Standard Time",
    "Europe/Helsinki": "FLE Standard Time",
    "Europe/Riga": "FLE Standard Time",
    "Europe/Athens": "GTB Standard Time",
    "Indian/Reunion": "Mauritius Standard Time",
    "Asia/Calcutta": "India Standard Time",
    "Asia/Hong_Kong": "China Standard Time",
    "Pacific/Noumea": "Central Pacific Standard Time",
    "Pacific/Tahiti": "Hawaiian Standard Time",
    "America/Toronto": "Eastern Standard Time",
    "America/Montreal": "Eastern Standard Time",
    "America/Detroit": "Eastern Standard Time",
    "America/Vancouver": "Pacific Standard Time",
    "America/Martinique": "SA Western Standard Time",
    "America/Guadeloupe": "SA Western Standard Time",
}
_WINDOWS_BY_LOWER = {name.lower(): iana for name, iana in WINDOWS_TO_IANA.items()}
_WINDOWS_BY_LOWER["tzone://microsoft/utc"] = "UTC"


def iana_zone(name: str) -> str | None:
    """The IANA name for a Windows or IANA time zone name, or None if unknown."""
    value = (name or "").strip()
    mapped = _WINDOWS_BY_LOWER.get(value.lower())
    if mapped:
        return mapped
    if not value or value.startswith(("/", ".")) or ".." in value:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return value


def windows_zone(iana: str) -> str:
    """Outlook's name for an IANA zone; the IANA name itself when there is no mapping."""
    return IANA_TO_WINDOWS.get(iana, iana)
