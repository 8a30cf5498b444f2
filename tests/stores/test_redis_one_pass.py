"""One SCAN pass per Redis target serves every selection of a daily run (real Redis, db 9).

Tenants 92001 / 920012 / 9200123 (each a prefix of the next), as in test_redis. The passes
are counted on the real client: every ``SCAN`` with cursor 0 starts one.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from redis.commands.core import ScanCommands

from devservers.connections import DEV_KEYS
from include.retention.airflow_context import RunRef
from include.retention.crypto import RetentionCrypto
from include.retention.daily.batching import batches
from include.retention.daily.breaker import RunOptions
from include.retention.daily.plan import plan_category
from include.retention.daily.purge import execute_specs
from include.retention.daily.verify import verify_plan
from include.retention.facts import LedgerFacts, LegalHold, SubjectDeletion, Termination
from include.retention.policy import DEFAULT_POLICY_PATH, Policy, parse_policy
from include.retention.selections import SubjectSelection, TenantSelection
from include.retention.stores import ONE_PASS_STORES
from include.retention.stores.redis import RedisStore
from tests.fixtures.mysql import MySqlDatabase
from tests.fixtures.redis import RedisKeys
from tests.stores.test_redis import T_LONG, T_MAIN, T_SHORT, agent_state, all_keys, write

pytestmark = pytest.mark.servers

KEYS = RetentionCrypto(
    subject_hash_key=DEV_KEYS["subject_hash_key"].encode(),
    subject_encryption_key=DEV_KEYS["subject_encryption_key"].encode(),
    certificate_key=DEV_KEYS["certificate_key"].encode(),
)
AS_OF = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)


class ScanPasses:
    """Counts the SCAN passes sent through redis-py (a SCAN with cursor 0 starts one), by pattern."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.patterns: list[str] = []
        original = ScanCommands.scan

        def scan(client: Any, cursor: int = 0, match: Any = None, *args: Any, **kwargs: Any) -> Any:
            if int(cursor) == 0:
                self.patterns.append(match.decode() if isinstance(match, bytes) else str(match))
            return original(client, cursor, match, *args, **kwargs)

        monkeypatch.setattr(ScanCommands, "scan", scan)

    def take(self) -> list[str]:
        taken, self.patterns = self.patterns, []
        return taken


def state_keys(groups: dict[str, list[str]], agent: str | None = None) -> set[str]:
    return {k for name, keys in groups.items() if name.startswith(f"state:{agent or ''}") for k in keys}


@pytest.mark.parametrize(
    "selected, neighbour, pattern",
    [
        pytest.param((T_SHORT, T_LONG), T_MAIN, r"cc:92001*", id="neighbour-between"),
        pytest.param((T_SHORT,), T_MAIN, r"cc:92001:agent:*", id="one-tenant-its-prefix"),
        pytest.param((T_MAIN,), T_LONG, r"cc:920012:agent:*", id="longer-neighbour"),
    ],
)
def test_tenants_sharing_a_prefix_exact_counts_in_one_pass(
    redis_keys: RedisKeys, policy: Policy, monkeypatch: pytest.MonkeyPatch,
    selected: tuple[str, ...], neighbour: str, pattern: str,
) -> None:
    groups = {t: write(redis_keys, t, extra_per_agent=5) for t in (T_SHORT, T_MAIN, T_LONG)}
    store, target = RedisStore(batch_size=7, scan_count=50), agent_state(policy)
    selections = [TenantSelection(t) for t in selected]
    passes = ScanPasses(monkeypatch)

    assert store.count_each(target, selections) == [len(state_keys(groups[t])) for t in selected]
    results = store.purge_each(target, selections)

    assert passes.take() == [pattern, pattern]  # one pass to count, one to purge: never one per tenant
    assert [(r.planned, r.deleted) for r in results] == [(len(state_keys(groups[t])),) * 2 for t in selected]
    for tenant in selected:  # queues, sessions and keys the template does not parse stay
        assert redis_keys.existing(tenant) == all_keys(groups[tenant]) - state_keys(groups[tenant])
    assert redis_keys.existing(neighbour) == all_keys(groups[neighbour])
    assert store.verify_each(target, selections) == [0] * len(selected)


def test_a_subject_and_a_terminated_tenant_in_one_pass(redis_keys: RedisKeys, policy: Policy,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    groups = {t: write(redis_keys, t) for t in (T_SHORT, T_MAIN, T_LONG)}
    store, target = RedisStore(), agent_state(policy)
    # a10 of 92001 also goes with its tenant: it counts in both, and is unlinked for the first
    selections = [TenantSelection(T_SHORT), SubjectSelection(T_SHORT, "agent", "a10", subject_hash="h1"),
                  SubjectSelection(T_MAIN, "agent", "a1", subject_hash="h2")]
    passes = ScanPasses(monkeypatch)
    whole, a10, a1 = len(state_keys(groups[T_SHORT])), len(groups[T_SHORT]["state:a10"]), len(groups[T_MAIN]["state:a1"])

    assert store.count_each(target, selections) == [whole, a10, a1]
    assert store.count_claimed(target, selections) == [whole, 0, a1]
    dry = store.purge_each(target, selections, dry_run=True)
    assert [(r.planned, r.deleted, r.dry_run) for r in dry] == [(whole, 0, True), (a10, 0, True), (a1, 0, True)]
    results = store.purge_each(target, selections)

    assert passes.take() == [r"cc:92001*"] * 4
    assert [(r.planned, r.deleted) for r in results] == [(whole, whole), (0, 0), (a1, a1)]
    assert redis_keys.existing(T_MAIN) == all_keys(groups[T_MAIN]) - set(groups[T_MAIN]["state:a1"])  # a10 stays
    assert redis_keys.existing(T_LONG) == all_keys(groups[T_LONG])


@pytest.fixture
def agent_keys_only() -> Policy:
    """The packaged policy with agent_info reduced to its Redis targets."""
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    agent_info = raw["categories"]["agent_info"]
    agent_info["targets"] = [t for t in agent_info["targets"] if t["store"] == "redis"]
    return parse_policy(raw)


def test_daily_run_scans_each_target_once_per_step_and_audits_each_spec(
    redis_keys: RedisKeys, ledger_db: MySqlDatabase, agent_keys_only: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = {t: write(redis_keys, t) for t in (T_SHORT, T_MAIN, T_LONG)}
    window = dict(received_at=AS_OF - timedelta(days=2), due_at=AS_OF + timedelta(days=28),
                  categories=frozenset({"agent_info"}))
    facts = LedgerFacts(
        # 920012 is terminated, but one of its agents is on legal hold: all of it stays
        holds=(LegalHold(T_MAIN, "agent", "a1", id=1, subject_hash=KEYS.subject_hash(T_MAIN, "agent", "a1")),),
        terminations=(Termination(T_SHORT, request_id="t-1", **window),  # type: ignore[arg-type]
                      Termination(T_MAIN, request_id="t-2", **window)),  # type: ignore[arg-type]
        deletions=(SubjectDeletion(T_LONG, "agent", "a10", KEYS.subject_hash(T_LONG, "agent", "a10"),
                                   request_id="d-1", **window),),  # type: ignore[arg-type]
    )
    passes = ScanPasses(monkeypatch)

    plan = plan_category(agent_keys_only, "agent_info", AS_OF, RunOptions(), crypto=KEYS, facts=facts)
    assert [(s["target"], s["selection"]["kind"], s["selection"]["tenant"]) for s in plan["specs"]] == [
        (t, kind, tenant) for t in ("agent_info.agent_state", "agent_info.agent_sessions")
        for kind, tenant in (("tenant", T_SHORT), ("subject", T_LONG))]
    assert any(T_MAIN in why and "legal hold" in why for why in plan["skipped"])
    assert len(passes.take()) == 2  # plan: one pass per target

    [batch] = batches(plan["specs"], "redis", 1024, one_pass=ONE_PASS_STORES)
    run = RunRef(run_id=f"scheduled__{AS_OF.isoformat()}__{secrets.token_hex(4)}", dag_id="retention_agent_info",
                 task_id="purge_redis")
    results = execute_specs(agent_keys_only, batch, dry_run=False, run=run, crypto=KEYS, facts=facts)
    assert len(passes.take()) == 4  # purge: per target, the audit's count and the purge itself
    verified = verify_plan(agent_keys_only, plan, crypto=KEYS, facts=facts)
    assert len(passes.take()) == 2  # verify: one pass per target
    assert [v["remaining"] for v in verified] == [0] * 4

    sessions = {k for name, keys in groups[T_SHORT].items() if name.startswith("session:") for k in keys}
    expected = [len(state_keys(groups[T_SHORT])), len(groups[T_LONG]["state:a10"]), len(sessions),
                len(groups[T_LONG]["session:a10"])]
    assert [r["deleted"] for r in results] == [s["planned"] for s in plan["specs"]] == expected
    rows = ledger_db.query("SELECT target, selection_kind, tenant_id, planned, deleted, outcome FROM purge_audit"
                           " WHERE run_id = %s ORDER BY id", (run.run_id,))
    assert [(t, k, tenant, p, d, o) for t, k, tenant, p, d, o in rows] == [
        (s["target"].split(".")[1], s["selection"]["kind"], s["selection"]["tenant"], n, n, "ok")
        for s, n in zip(plan["specs"], expected)]
    assert redis_keys.existing(T_MAIN) == all_keys(groups[T_MAIN])  # the held tenant lost nothing
    assert redis_keys.existing(T_SHORT) == all_keys(groups[T_SHORT]) - state_keys(groups[T_SHORT]) - sessions
    gone = set(groups[T_LONG]["state:a10"]) | set(groups[T_LONG]["session:a10"])
    assert redis_keys.existing(T_LONG) == all_keys(groups[T_LONG]) - gone  # a1 and a10's neighbours stay
