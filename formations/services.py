from __future__ import annotations

from formations.models import Formation


def formation_cancel(*, formation: Formation) -> bool:
    """Cancel a formation. Returns False if it was already cancelled (nothing changes)."""
    if formation.is_cancelled:
        return False
    formation.status = Formation.Status.CANCELLED
    formation.save(update_fields=["status", "updated_at"])
    return True
