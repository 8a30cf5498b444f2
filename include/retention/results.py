"""What a purge reports: counts only, never personal data, and the errors a store raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass(frozen=True)
class PurgeResult:
    """What one purge of one selection in one target did. Counts only, no personal data."""

    target: str
    store: str
    method: str
    planned: int
    deleted: int
    remaining: int | None = None  # from verify(); None when not yet verified
    batches: int = 0
    dry_run: bool = False
    seconds: float = 0.0
    details: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "store": self.store,
            "method": self.method,
            "planned": self.planned,
            "deleted": self.deleted,
            "remaining": self.remaining,
            "batches": self.batches,
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 3),
            **({"details": self.details} if self.details else {}),
        }


class PartialPurgeError(RuntimeError):
    """A purge failed part-way. What was deleted before the failure stays deleted;
    a rerun of the same selection finishes the job (every purge is idempotent)."""

    def __init__(self, target: str, deleted: int, cause: BaseException | str) -> None:
        self.target, self.deleted, self.cause = target, deleted, cause
        super().__init__(f"purge of {target} failed after deleting {deleted}: {cause}")


class PartialPurgesError(PartialPurgeError):
    """A purge of several selections in one pass (one listing of their target) failed part-way.

    ``each`` holds what was deleted for each selection, in their order; ``deleted`` is the sum.
    """

    def __init__(self, target: str, each: Sequence[int], cause: BaseException | str) -> None:
        self.each = tuple(int(n) for n in each)
        super().__init__(target, sum(self.each), cause)


class UnsupportedSelection(ValueError):
    """The store cannot address this selection in this target (e.g. no subject column)."""
