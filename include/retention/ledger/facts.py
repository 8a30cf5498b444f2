"""The facts loader: overrides, holds and the open request windows a run plans with.

Subject ids are decrypted here, in the task that needs them, and never leave the worker.
"""

from __future__ import annotations

import json
from datetime import datetime

from include.retention.crypto import RetentionCrypto
from include.retention.facts import LedgerFacts, SubjectDeletion, Termination
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.ledger.holds import list_holds
from include.retention.ledger.overrides import list_overrides
from include.retention.request_states import SWEPT_STATES
from include.retention.timeutil import from_naive_utc, to_naive_utc


def load_facts(as_of: datetime, crypto: RetentionCrypto, *, conn_id: str = LEDGER_CONN_ID) -> LedgerFacts:
    """Facts for a run as of ``as_of``.

    Holds: every hold active *now*, whatever the run's date, because the purge happens now.
    Requests: executed (not preview, not rejected) requests whose window contains ``as_of``.
    """
    overrides = tuple(list_overrides(conn_id=conn_id))
    holds = tuple(h.opened(crypto) for h in list_holds(conn_id=conn_id))
    terminations: list[Termination] = []
    deletions: list[SubjectDeletion] = []
    as_of_utc = to_naive_utc(as_of)
    placeholders = ", ".join(["%s"] * len(SWEPT_STATES))
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            f"""SELECT request_id, request_type, tenant_id, subject_type, subject_hash, subject_enc, categories, received_at, due_at
                FROM requests
                WHERE mode = 'execute' AND state IN ({placeholders}) AND received_at <= %s AND due_at >= %s""",
            (*SWEPT_STATES, as_of_utc, as_of_utc),
        )
        rows = cur.fetchall()
    for request_id, kind, tenant, subject_type, subject_hash, subject_enc, categories, received, due in rows:
        cats = frozenset(json.loads(categories))
        received_at, due_at = from_naive_utc(received), from_naive_utc(due)
        assert received_at is not None and due_at is not None
        if kind == "termination":
            terminations.append(Termination(str(tenant), received_at, due_at, cats, str(request_id)))
        elif kind == "deletion" and subject_enc:
            deletions.append(
                SubjectDeletion(str(tenant), str(subject_type), crypto.decrypt_subject(subject_enc), str(subject_hash),
                                received_at, due_at, cats, str(request_id))
            )
    return LedgerFacts(overrides, holds, tuple(terminations), tuple(deletions))
