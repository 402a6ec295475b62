"""The JSON API under /api/calendar-integration/, with the product's existing paths and names.

Callers authenticate with their session (CSRF is checked on unsafe methods) or with a personal
token (`Authorization: Bearer fcal_...`, created on the "Accès API" settings page). Every error
is `{"error": {"code": ..., "message": ...}}`; no answer ever holds a token or a code.

`auth` (the two ways in), `schemas` (what goes in and out), `operations` (the endpoints),
`app` (the NinjaAPI, its error handlers and its URL patterns).
"""

from __future__ import annotations

from calendars.api.app import api, urls

__all__ = ["api", "urls"]
