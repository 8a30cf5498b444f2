"""What the ledger tells a run, as the planner's inputs: overrides, holds, open requests.

Subject ids are decrypted here, in the task that needs them, and never leave the worker:
what the tasks pass on is their keyed hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from include.retention import ledger
from include.retention.keys import RetentionKeys
from include.retention.partitions import LegalHold, SubjectDeletion, TenantOverride, Termination

#: Requests whose window the daily DAGs sweep: everything accepted for execution.
SWEPT_STATES = ("received", "planned", "in_progress", "verifying", "completed", "failed")


@dataclass(frozen=True)
class LedgerFacts:
    overrides: tuple[TenantOverride, ...] = ()
    holds: tuple[LegalHold, ...] = ()
    terminations: tuple[Termination, ...] = ()
    deletions: tuple[SubjectDeletion, ...] = ()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def load_facts(as_of: datetime, keys: RetentionKeys, *, conn_id: str = ledger.LEDGER_CONN_ID) -> LedgerFacts:
    """Facts for a run as of ``as_of``.

    Holds: every hold active *now*, whatever the run's date, because the purge happens now.
    Requests: executed (not preview, not rejected) requests whose window contains ``as_of``.
    """
    overrides = tuple(
        TenantOverride(o.tenant_id, o.category, o.retention_months) for o in ledger.list_overrides(conn_id=conn_id)
    )
    holds = tuple(
        LegalHold(h.tenant_id, h.subject_type, h.subject_id(keys)) for h in ledger.list_holds(conn_id=conn_id)
    )
    terminations: list[Termination] = []
    deletions: list[SubjectDeletion] = []
    as_of_utc = as_of.astimezone(timezone.utc).replace(tzinfo=None)
    placeholders = ", ".join(["%s"] * len(SWEPT_STATES))
    with ledger.connect(conn_id) as conn:
        cur = ledger.plain_cursor(conn)
        cur.execute(
            f"""SELECT request_type, tenant_id, subject_type, subject_hash, subject_enc, categories, received_at, due_at
                FROM requests
                WHERE mode = 'execute' AND state IN ({placeholders}) AND received_at <= %s AND due_at >= %s""",
            (*SWEPT_STATES, as_of_utc, as_of_utc),
        )
        rows = cur.fetchall()
    for kind, tenant, subject_type, subject_hash, subject_enc, categories, received, due in rows:
        cats = frozenset(json.loads(categories))
        if kind == "termination":
            terminations.append(Termination(str(tenant), _aware(received), _aware(due), cats))
        elif kind == "deletion" and subject_enc:
            deletions.append(
                SubjectDeletion(str(tenant), str(subject_type), keys.decrypt_subject(subject_enc), str(subject_hash),
                                _aware(received), _aware(due), cats)
            )
    return LedgerFacts(overrides, holds, tuple(terminations), tuple(deletions))
