"""The value every reader returns: one derived copy, and whether it outlives the request's due date."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from include.retention.timeutil import UTC

#: How a copy ends. ``none``: there is no such copy; ``at``: by ``ends_at``; ``next_event``: at an
#: event the server schedules (the next RDB save); ``operator``: only when an operator acts (an
#: AOF rewrite, a snapshot deleted by hand); ``never``: the server keeps it for good;
#: ``unknown``: it could not be read.
ENDINGS = ("none", "at", "next_event", "operator", "never", "unknown")


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


@dataclass(frozen=True)
class DerivedCopy:
    """One copy of deleted data a store keeps beside the data itself.

    :param read: the server settings the statement rests on (names and numbers, never data).
    """

    store: str
    copy: str
    ends: str
    statement: str
    ends_at: datetime | None = None
    read: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ends not in ENDINGS:
            raise ValueError(f"ends must be one of {', '.join(ENDINGS)}, got {self.ends!r}")
        if (self.ends == "at") != (self.ends_at is not None):
            raise ValueError("ends_at is set exactly when ends is 'at'")

    def outlives(self, due_at: datetime) -> bool | None:
        """True when the copy may still exist after ``due_at``; None when that cannot be known."""
        if self.ends == "none":
            return False
        if self.ends == "at":
            assert self.ends_at is not None
            return self.ends_at > due_at
        if self.ends == "never":
            return True
        return None

    def as_json(self, due_at: datetime) -> dict[str, Any]:
        return {"store": self.store, "copy": self.copy, "ends": self.ends, "ends_at": iso(self.ends_at),
                "outlives_due": self.outlives(due_at), "statement": self.statement, "read": dict(self.read)}


def unreadable(store: str, copy: str, why: str) -> DerivedCopy:
    """A copy the server would not describe: said so, never guessed."""
    return DerivedCopy(store, copy, "unknown", f"{copy}: could not be read ({why})")


def section(copies: Iterable[DerivedCopy], *, due_at: datetime, read_at: datetime) -> dict[str, Any]:
    """The certificate's ``derived_copies`` section."""
    listed = [c.as_json(due_at) for c in copies]
    return {
        "read_at": iso(read_at),
        "due_at": iso(due_at),
        "copies": listed,
        "outlive_due": any(c["outlives_due"] is True for c in listed),
        "unknown": sum(1 for c in listed if c["outlives_due"] is None),
        "note": "each copy as its server described it when the certificate was issued (docs/PROOF.md)",
    }


def outliving(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The copies of a signed certificate that outlive its due date (for the SLA monitor)."""
    body = document.get("certificate", document)
    return [c for c in ((body.get("derived_copies") or {}).get("copies") or []) if c.get("outlives_due") is True]
