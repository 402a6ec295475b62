"""What an import or an export did, counted; a run records their sum."""

from __future__ import annotations

from dataclasses import dataclass, field

from calendars.errors import ProviderError


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    requests: int = 0
    full: bool = False
    busy: int = 0  # calendars another import was already bringing up to date
    warnings: list[str] = field(default_factory=list)  # kept in the run's history
    access_token: str = field(default="", repr=False)  # reused for every page of one import

    def add(self, other: ImportResult) -> None:
        for name in ("created", "updated", "deleted", "skipped", "requests", "busy"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.warnings += [w for w in other.warnings if w not in self.warnings]
        self.full = self.full or other.full
        self.access_token = other.access_token or self.access_token

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "skipped": self.skipped,
        }


@dataclass
class ExportResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    removed: int = 0  # events the learner deleted from their calendar: left alone
    failed: int = 0
    requests: int = 0
    busy: bool = False
    event_ids: dict[str, str] = field(default_factory=dict, repr=False)  # formation uid → id
    first_error: ProviderError | None = field(default=None, repr=False)  # of those `failed`

    def add(self, other: ExportResult) -> None:
        for name in ("created", "updated", "deleted", "unchanged", "removed", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.requests += other.requests
        self.event_ids.update(other.event_ids)
        self.first_error = self.first_error or other.first_error

    def as_dict(self) -> dict[str, int]:
        names = ("created", "updated", "deleted", "unchanged", "removed", "failed")
        return {name: getattr(self, name) for name in names}
