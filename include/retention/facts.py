"""What the ledger tells a run, as values: overrides, holds, open requests. One class each.

The ledger modules (``ledger/overrides.py``, ``ledger/holds.py``, ``ledger/facts.py``) read
and write them; the planner (``expiry.py``) decides with them. Subject ids are decrypted
only in the task that needs them (``LegalHold.opened``) and never leave the worker: what
the tasks pass on is their keyed hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.retention.crypto import RetentionCrypto

MAX_OVERRIDE_MONTHS = 120


def operator_text(value: object, what: str, limit: int) -> str:
    """A reason or a name an operator typed: one line of printable text, at most ``limit`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    if not value.isprintable():  # NUL, escape sequences and line breaks would garble listings and logs
        raise ValueError(f"{what} contains a control character; write it on one line of printable text")
    return value.strip()


@dataclass(frozen=True)
class TenantOverride:
    """A tenant that bought extended storage keeps a category for ``retention_months``."""

    tenant_id: str
    category: str
    retention_months: int
    reason: str = ""
    set_by: str = ""
    set_at: datetime | None = None
    id: int = 0


@dataclass(frozen=True)
class LegalHold:
    """Data of a tenant (``subject_type`` None), or of one subject of it, that no purge may touch.

    As the ledger lists it, a subject hold carries its keyed hash and its Fernet token;
    ``subject_id`` is filled in by :meth:`opened`, in the task that needs it. Never log it.
    """

    tenant_id: str
    subject_type: str | None = None
    subject_id: str | None = field(default=None, repr=False)
    id: int = 0
    subject_hash: str | None = None
    subject_enc: str | None = field(default=None, repr=False)
    reason: str = ""
    placed_by: str = ""
    placed_at: datetime | None = None
    released_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None

    @property
    def whole_tenant(self) -> bool:
        return self.subject_type is None

    def opened(self, crypto: RetentionCrypto) -> LegalHold:
        """The hold with its subject id decrypted (a whole-tenant hold is returned as it is)."""
        if self.subject_enc is None or self.subject_id is not None:
            return self
        return replace(self, subject_id=crypto.decrypt_subject(self.subject_enc))


@dataclass(frozen=True)
class Termination:
    """A termination request from the ledger: the tenant's data goes, and late-arriving data
    keeps being swept until ``due_at``."""

    tenant: str
    received_at: datetime
    due_at: datetime
    categories: frozenset[str]
    request_id: str = ""


@dataclass(frozen=True)
class SubjectDeletion:
    """A deletion request from the ledger (subject id decrypted for the sweep only)."""

    tenant: str
    subject_type: str
    subject_id: str = field(repr=False)
    subject_hash: str
    received_at: datetime
    due_at: datetime
    categories: frozenset[str]
    request_id: str = ""


@dataclass(frozen=True)
class LedgerFacts:
    """Everything the ledger says about one run: the planner's inputs besides the policy."""

    overrides: tuple[TenantOverride, ...] = ()
    holds: tuple[LegalHold, ...] = ()
    terminations: tuple[Termination, ...] = ()
    deletions: tuple[SubjectDeletion, ...] = ()

    def subject_lookup(self, crypto: RetentionCrypto) -> dict[str, tuple[str, str, str]]:
        """hash -> (tenant, type, id) for every subject these facts let a run name (to rebuild selections)."""
        out: dict[str, tuple[str, str, str]] = {}
        for d in self.deletions:
            out[d.subject_hash] = (d.tenant, d.subject_type, d.subject_id)
        for h in self.holds:
            if h.subject_type and h.subject_id:
                out[crypto.subject_hash(h.tenant_id, h.subject_type, h.subject_id)] = (
                    h.tenant_id, h.subject_type, h.subject_id)
        return out
