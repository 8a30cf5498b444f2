"""The circuit breaker counts each record once (real MariaDB, the least-privilege user).

A terminated tenant whose rows have also expired is selected twice in one daily run: by the
expired sweep over every tenant and by its termination (and a deleted subject of that tenant
a third time). The breaker's share of the target must count what will go, each record once:
the test plans, purges, and compares the share's ``planned`` with the rows that disappeared
and with an oracle written from the published rule.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from typing import Any

import pytest
import yaml

from devservers.connections import DEV_KEYS
from include.retention.airflow_context import RunRef
from include.retention.crypto import RetentionCrypto
from include.retention.daily.batching import batches
from include.retention.daily.breaker import RunOptions
from include.retention.daily.plan import plan_category
from include.retention.daily.purge import execute_specs
from include.retention.facts import LedgerFacts, LegalHold, SubjectDeletion, Termination
from include.retention.policy import DEFAULT_POLICY_PATH, Policy, parse_policy
from tests.fixtures.mysql import MySqlDatabase

pytestmark = pytest.mark.servers

UTC = timezone.utc
SGT = ZoneInfo("Asia/Singapore")
KEYS = RetentionCrypto(
    subject_hash_key=DEV_KEYS["subject_hash_key"].encode(),
    subject_encryption_key=DEV_KEYS["subject_encryption_key"].encode(),
    certificate_key=DEV_KEYS["certificate_key"].encode(),
)
AS_OF = datetime(2026, 10, 20, 2, 0, tzinfo=UTC)
# The published rule (README): 6 calendar months, from the start of the Singapore day.
CUTOFF = datetime(2026, 4, 20, tzinfo=SGT).astimezone(UTC).replace(tzinfo=None)
TERMINATED, NEIGHBOUR, OTHER = "12", "123", "7"  # 12 is a prefix of 123
OPTIONS = RunOptions(allow_large_purge=True, override_reason="breaker share test")


@pytest.fixture
def call_records_only() -> Policy:
    """The packaged policy with call_data reduced to its MySQL table (no object store in this test)."""
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    call_data = raw["categories"]["call_data"]
    call_data["targets"] = [t for t in call_data["targets"] if t["name"] == "call_records"]
    return parse_policy(raw)


def seed(db: MySqlDatabase) -> list[tuple[int, datetime, str]]:
    """Two calls a month through 2026 for each tenant, by alice and bob: (id, started_at, tenant)."""
    rows = []
    for month in range(1, 13):
        for tenant in (TERMINATED, NEIGHBOUR, OTHER):
            for agent in ("alice", "bob"):
                rows.append({"id": len(rows) + 1, "started_at": datetime(2026, month, 14, 12), "tenant_id": tenant,
                             "call_id": f"{len(rows) + 1:032d}", "direction": "inbound", "agent_id": agent,
                             "customer_number": None, "duration_s": 60, "recording_key": None})
    db.insert("call_records", rows)
    return [(r["id"], r["started_at"], r["tenant_id"]) for r in rows]


def purge_and_check(policy: Policy, plan: dict[str, Any], facts: LedgerFacts, db: MySqlDatabase,
                    rows: list[tuple[int, datetime, str]], going: set[int]) -> None:
    """Purge the plan's MySQL specs as one mapped task would; exactly ``going`` left, and the
    audit counts what the breaker's share planned."""
    [share] = plan["breaker"]
    [batch] = batches(plan["specs"], "mysql", 1024)  # overlapping specs: one mapped task
    run = RunRef(run_id=f"scheduled__{AS_OF.isoformat()}__{secrets.token_hex(4)}", dag_id="retention_call_data",
                 task_id="purge_mysql")
    results = execute_specs(policy, batch, dry_run=False, run=run, crypto=KEYS, facts=facts,
                            override_reason=OPTIONS.override_reason)

    gone = {i for i, _at, _tenant in rows} - db.ids("call_records")
    assert gone == going
    assert sum(r["deleted"] for r in results) == share["planned"]


def test_a_terminated_tenants_expired_rows_count_once_in_the_share(
    cc_mysql: MySqlDatabase, ledger_db: MySqlDatabase, call_records_only: Policy
) -> None:
    rows = seed(cc_mysql)
    window = dict(received_at=AS_OF - timedelta(days=2), due_at=AS_OF + timedelta(days=28),
                  categories=frozenset({"call_data"}))
    facts = LedgerFacts(
        terminations=(Termination(TERMINATED, request_id="t-1", **window),),  # type: ignore[arg-type]
        deletions=(SubjectDeletion(TERMINATED, "agent", "alice", KEYS.subject_hash(TERMINATED, "agent", "alice"),
                                   request_id="d-1", **window),),  # type: ignore[arg-type]
    )
    going = {i for i, at, tenant in rows if tenant == TERMINATED or at < CUTOFF}

    plan = plan_category(call_records_only, "call_data", AS_OF, OPTIONS, crypto=KEYS, facts=facts)

    [share] = plan["breaker"]
    assert share["target"] == "call_data.call_records"
    assert [s["selection"]["kind"] for s in plan["specs"]] == ["expired", "tenant", "subject"]
    # The specs overlap: their counts add up to more than will go.
    assert sum(s["planned"] for s in plan["specs"]) > len(going)
    assert share["planned"] == len(going)
    assert share["total"] == len(rows)

    purge_and_check(call_records_only, plan, facts, cc_mysql, rows, going)


def test_a_deleted_subjects_expired_rows_count_once_in_the_share(
    cc_mysql: MySqlDatabase, ledger_db: MySqlDatabase, call_records_only: Policy
) -> None:
    """alice of 123 asked for deletion and half her calls have expired anyway: each row counts once.

    Her namesake in 12 (a tenant whose id is a prefix of 123) is another subject and stays
    unless expired; bob of 123 is on legal hold, so none of his rows go, expired or not.
    """
    rows = seed(cc_mysql)
    alice_rows = {r[0] for r in cc_mysql.query(
        "SELECT id FROM call_records WHERE tenant_id = %s AND agent_id = 'alice'", (NEIGHBOUR,))}
    bob_rows = {r[0] for r in cc_mysql.query(
        "SELECT id FROM call_records WHERE tenant_id = %s AND agent_id = 'bob'", (NEIGHBOUR,))}
    window = dict(received_at=AS_OF - timedelta(days=2), due_at=AS_OF + timedelta(days=28),
                  categories=frozenset({"call_data"}))
    facts = LedgerFacts(
        deletions=(SubjectDeletion(NEIGHBOUR, "agent", "alice", KEYS.subject_hash(NEIGHBOUR, "agent", "alice"),
                                   request_id="d-2", **window),),  # type: ignore[arg-type]
        holds=(LegalHold(NEIGHBOUR, "agent", "bob", id=5, subject_hash=KEYS.subject_hash(NEIGHBOUR, "agent", "bob")),),
    )
    going = ({i for i, at, _tenant in rows if at < CUTOFF} | alice_rows) - bob_rows

    plan = plan_category(call_records_only, "call_data", AS_OF, OPTIONS, crypto=KEYS, facts=facts)

    [share] = plan["breaker"]
    assert [s["selection"]["kind"] for s in plan["specs"]] == ["expired", "subject"]
    assert sum(s["planned"] for s in plan["specs"]) > len(going), "the specs overlap"
    assert share["planned"] == len(going)

    purge_and_check(call_records_only, plan, facts, cc_mysql, rows, going)
