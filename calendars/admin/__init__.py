"""The calendars' admin: support's view of the learners' connections and syncs
(`integrations`), and the formations' admin extended with their learners' availability
(`formations`: the formations app knows nothing of calendars)."""

from calendars.admin import formations, integrations

__all__ = ["formations", "integrations"]
