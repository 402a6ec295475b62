"""The calendars' admin: support's view of the learners' connections and syncs
(`integrations`)."""

from calendars.admin import integrations

__all__ = ["integrations"]
