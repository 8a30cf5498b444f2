"""RedisStore against a real Redis: exact selections, batching, dry runs, reruns, crashes, restarts.

Shared server: TEST namespace db 9, test tenants 92001 / 920012 / 9200123 only (each a
prefix of the next), cleaned up after every test. Crash and cluster tests run private
redis-servers on spare ports, started and stopped by pid.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest
from redis.client import Pipeline

from include.retention.identifiers import IdentifierError
from include.retention.policy import Policy, RedisTarget
from include.retention.selections import ExpiredSelection, SubjectSelection, TenantSelection
from include.retention.results import PartialPurgeError, UnsupportedSelection
from include.retention.stores.redis import RedisStore, glob_escape
from tests.fixtures.redis import PrivateRedis, PrivateRedisCluster, RedisKeys

pytestmark = pytest.mark.servers

T_SHORT, T_MAIN, T_LONG = "92001", "920012", "9200123"  # each a prefix of the next
AGENTS = ("a1", "a10", "b.x-2")
SECRET_AGENT = "zq.secret-agent-7"


def agent_state(policy: Policy) -> RedisTarget:
    target = policy.target("agent_info.agent_state")
    assert isinstance(target, RedisTarget)
    return target


def agent_sessions(policy: Policy) -> RedisTarget:
    target = policy.target("agent_info.agent_sessions")
    assert isinstance(target, RedisTarget)
    return target


def layout(tenant: str, *, extra_per_agent: int = 0, agents: tuple[str, ...] = AGENTS) -> dict[str, list[str]]:
    """Keys of one tenant, grouped by what owns them."""
    groups: dict[str, list[str]] = {"queue": [f"cc:{tenant}:queue:inbound", f"cc:{tenant}:queue:vip"],
                                    # under the target's glob but not parsed by its template: never ours
                                    "unparsed": [f"cc:{tenant}:agent:Upper-Case:profile", f"cc:{tenant}:agent:a1",
                                                 f"cc:{tenant}:agent:a*:profile", f"cc:{tenant}:agent::x"]}
    for agent in agents:
        groups[f"state:{agent}"] = [f"cc:{tenant}:agent:{agent}:profile", f"cc:{tenant}:agent:{agent}:status"] + [
            f"cc:{tenant}:agent:{agent}:extra:{i}" for i in range(extra_per_agent)
        ]
        groups[f"session:{agent}"] = [f"cc:{tenant}:session:{agent}:s{i:04d}" for i in range(3)]
    return groups


def write(redis_keys: RedisKeys, tenant: str, **kwargs: Any) -> dict[str, list[str]]:
    groups = layout(tenant, **kwargs)
    redis_keys.write((k for keys in groups.values() for k in keys), tenant=tenant)
    return groups


def all_keys(groups: dict[str, list[str]]) -> set[str]:
    return {k for keys in groups.values() for k in keys}


def test_glob_escape() -> None:
    assert glob_escape(r"cc:1*2?[3]\:") == r"cc:1\*2\?\[3\]\\:"
    assert glob_escape("cc:12:agent:a.b-c:") == "cc:12:agent:a.b-c:"


def test_tenant_selection_deletes_exactly_that_tenants_target_keys(redis_keys: RedisKeys, policy: Policy) -> None:
    groups = {t: write(redis_keys, t) for t in (T_SHORT, T_MAIN, T_LONG)}
    store = RedisStore()
    target = agent_state(policy)
    selected = {k for name, keys in groups[T_MAIN].items() if name.startswith("state:") for k in keys}

    assert store.count(target, TenantSelection(T_MAIN)) == len(selected)
    result = store.purge(target, TenantSelection(T_MAIN))

    assert (result.planned, result.deleted, result.dry_run) == (len(selected), len(selected), False)
    assert redis_keys.existing(T_MAIN) == all_keys(groups[T_MAIN]) - selected  # sessions, queues, unparsed stay
    assert redis_keys.existing(T_SHORT) == all_keys(groups[T_SHORT])
    assert redis_keys.existing(T_LONG) == all_keys(groups[T_LONG])
    assert store.verify(target, TenantSelection(T_MAIN)) == 0
    assert store.purge(target, TenantSelection(T_MAIN)).deleted == 0


@pytest.mark.parametrize("agent", ["a1", "a10", "b.x-2"])
def test_subject_selection_deletes_exactly_that_agents_keys(redis_keys: RedisKeys, policy: Policy, agent: str) -> None:
    groups = {t: write(redis_keys, t) for t in (T_MAIN, T_LONG)}
    store = RedisStore()
    selection = SubjectSelection(T_MAIN, "agent", agent, subject_hash="h")

    state = store.purge(agent_state(policy), selection)
    sessions = store.purge(agent_sessions(policy), selection)

    assert state.deleted == len(groups[T_MAIN][f"state:{agent}"])
    assert sessions.deleted == len(groups[T_MAIN][f"session:{agent}"])
    gone = set(groups[T_MAIN][f"state:{agent}"]) | set(groups[T_MAIN][f"session:{agent}"])
    assert redis_keys.existing(T_MAIN) == all_keys(groups[T_MAIN]) - gone  # a1 never takes a10 with it
    assert redis_keys.existing(T_LONG) == all_keys(groups[T_LONG])  # nor the same agent of tenant 9200123
    assert store.verify(agent_state(policy), selection) == 0
    assert store.purge(agent_state(policy), selection).deleted == 0
    assert store.purge(agent_sessions(policy), selection).deleted == 0


@pytest.mark.parametrize(
    "selection, group_prefix",
    [
        pytest.param(TenantSelection(T_MAIN), "state:", id="tenant"),
        pytest.param(SubjectSelection(T_MAIN, "agent", "a10", subject_hash="h"), "state:a10", id="subject"),
    ],
)
def test_dry_run_counts_and_deletes_nothing(redis_keys: RedisKeys, policy: Policy, selection: Any,
                                            group_prefix: str) -> None:
    groups = write(redis_keys, T_MAIN, extra_per_agent=40)
    expected = sum(len(keys) for name, keys in groups.items() if name.startswith(group_prefix))

    result = RedisStore().purge(agent_state(policy), selection, dry_run=True)

    assert (result.planned, result.deleted, result.batches, result.dry_run) == (expected, 0, 0, True)
    assert redis_keys.existing(T_MAIN) == all_keys(groups)


@pytest.mark.parametrize(
    "batch_size, scan_count",
    [
        pytest.param(1_000, 1_000, id="defaults"),
        pytest.param(7, 10, id="tiny-batches"),
        pytest.param(1_000, 50, id="short-scans"),
    ],
)
def test_batches_stream_more_than_two_thousand_keys(redis_keys: RedisKeys, policy: Policy, batch_size: int,
                                                    scan_count: int) -> None:
    groups = write(redis_keys, T_MAIN, extra_per_agent=800, agents=("a1", "a2", "a3"))  # 2,406 state keys
    write(redis_keys, T_LONG, extra_per_agent=10)
    selected = [k for name, keys in groups.items() if name.startswith("state:") for k in keys]
    assert len(selected) > 2_000
    store = RedisStore(batch_size=batch_size, scan_count=scan_count)

    result = store.purge(agent_state(policy), TenantSelection(T_MAIN))

    assert result.deleted == len(selected)
    assert result.batches == -(-len(selected) // batch_size)
    assert store.count(agent_state(policy), TenantSelection(T_MAIN)) == 0
    assert store.count(agent_state(policy), TenantSelection(T_LONG)) == len(AGENTS) * 12


def test_expired_selection_and_dated_units(policy: Policy) -> None:
    from datetime import datetime, timezone

    store = RedisStore(redis_conn_id="no_such_connection")  # nothing below may touch a server
    target = agent_state(policy)
    assert store.dated_units(target) == []
    with pytest.raises(UnsupportedSelection, match="carry no date"):
        store.purge(target, ExpiredSelection(before=datetime(2026, 1, 1, tzinfo=timezone.utc)))


@pytest.mark.parametrize(
    "selection, error",
    [
        pytest.param(SubjectSelection(T_MAIN, "phone_number", "+6591234567"), UnsupportedSelection, id="no-placeholder"),
        pytest.param(TenantSelection("9200*"), IdentifierError, id="tenant-wildcard"),
        pytest.param(TenantSelection("92001 "), IdentifierError, id="tenant-space"),
        pytest.param(SubjectSelection(T_MAIN, "agent", "a1*"), IdentifierError, id="agent-wildcard"),
        pytest.param(SubjectSelection(T_MAIN, "agent", "a[0-9]"), IdentifierError, id="agent-class"),
        pytest.param(SubjectSelection(T_MAIN, "agent", "A1"), IdentifierError, id="agent-format"),
    ],
)
def test_bad_selections_are_refused_before_any_io(policy: Policy, selection: Any, error: type[Exception]) -> None:
    store = RedisStore(redis_conn_id="no_such_connection")
    with pytest.raises(error):
        store.count(agent_state(policy), selection)
    with pytest.raises(error):
        store.purge(agent_state(policy), selection)


def test_subject_id_is_never_logged_or_returned(redis_keys: RedisKeys, policy: Policy,
                                                caplog: pytest.LogCaptureFixture) -> None:
    write(redis_keys, T_MAIN, agents=(SECRET_AGENT, "a1"))
    selection = SubjectSelection(T_MAIN, "agent", SECRET_AGENT, subject_hash="h")
    with caplog.at_level(logging.DEBUG):
        dry = RedisStore().purge(agent_state(policy), selection, dry_run=True)
        result = RedisStore().purge(agent_state(policy), selection)
    assert result.deleted == 2
    for text in (caplog.text, repr(dry), repr(result), repr(result.as_dict()), repr(selection)):
        assert SECRET_AGENT not in text


def seed_private(server: PrivateRedis, monkeypatch: pytest.MonkeyPatch, n: int = 5_000) -> RedisStore:
    """``n`` agent keys of T_MAIN and of T_LONG (the neighbour that must survive) on ``server``;
    returns a store on it, 500 keys a batch."""
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_REDIS_CRASH", server.conn_uri(db=0))
    pipe = server.client().pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"cc:{T_MAIN}:agent:a{i % 50}:k{i}", b"x")
        pipe.set(f"cc:{T_LONG}:agent:a{i % 50}:k{i}", b"x")
    pipe.execute()
    return RedisStore(redis_conn_id="retention_redis_crash", batch_size=500)


def before_round_trip(monkeypatch: pytest.MonkeyPatch, n: int, action: Callable[[], None]) -> None:
    """Run ``action`` just before the ``n``-th pipeline round trip (until the test ends)."""
    calls = {"n": 0}
    original = Pipeline.execute

    def execute(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            action()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", execute)


def test_crash_part_way_raises_and_a_rerun_finishes(private_redis: PrivateRedis, policy: Policy,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = seed_private(private_redis, monkeypatch)
    target = agent_state(policy)
    with monkeypatch.context() as patched:
        before_round_trip(patched, 4, private_redis.kill)
        with pytest.raises(PartialPurgeError) as failure:
            store.purge(target, TenantSelection(T_MAIN))
    first = failure.value.deleted
    assert 0 < first < 5_000
    assert failure.value.target == "agent_info.agent_state"

    private_redis.start()  # same port and directory: the append-only file brings the data back
    assert store.count(target, TenantSelection(T_MAIN)) == 5_000 - first  # acknowledged UNLINKs stayed done
    rerun = store.purge(target, TenantSelection(T_MAIN))  # the same store object reconnects
    assert rerun.deleted == 5_000 - first
    assert store.verify(target, TenantSelection(T_MAIN)) == 0
    assert store.count(target, TenantSelection(T_LONG)) == 5_000


def test_restart_mid_purge_is_rescanned_not_reported_done(private_redis: PrivateRedis, policy: Policy,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = seed_private(private_redis, monkeypatch)
    target = agent_state(policy)
    run_before = private_redis.client().info("server")["run_id"]

    def restart() -> None:
        private_redis.stop()  # a clean restart: the append-only file keeps every acknowledged UNLINK
        private_redis.start()

    with monkeypatch.context() as patched:
        before_round_trip(patched, 4, restart)
        result = store.purge(target, TenantSelection(T_MAIN))  # redis-py reconnects by itself

    assert private_redis.client().info("server")["run_id"] != run_before  # it did restart
    # Without the rescan, the cursor from before the restart skips keys and the purge says "done".
    # (planned may count a key twice: one SCAN across the restart can return it again.)
    assert result.deleted == 5_000 <= result.planned
    assert store.verify(target, TenantSelection(T_MAIN)) == 0
    assert store.count(target, TenantSelection(T_LONG)) == 5_000


@pytest.mark.slow
def test_cluster_scans_every_primary_and_unlinks_per_slot(tmp_path: Any, policy: Policy,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = PrivateRedisCluster(tmp_path / "cluster").start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_RETENTION_REDIS_CLUSTER", cluster.conn_uri())
        store = RedisStore(redis_conn_id="retention_redis_cluster", batch_size=300)
        client = store.client
        from redis.cluster import RedisCluster

        assert isinstance(client, RedisCluster)
        for tenant in (T_MAIN, T_LONG):
            for i in range(1_500):
                client.set(f"cc:{tenant}:agent:a{i % 7}:k{i}", b"x")
            client.set(f"cc:{tenant}:queue:q", b"x")
        per_node = [n.client().dbsize() for n in cluster.nodes]
        assert all(size > 0 for size in per_node)  # the keys really are spread over the primaries
        target = agent_state(policy)

        assert store.count(target, TenantSelection(T_MAIN)) == 1_500
        sub = SubjectSelection(T_MAIN, "agent", "a1", subject_hash="h")
        expected_a1 = len([i for i in range(1_500) if i % 7 == 1])
        assert store.purge(target, sub).deleted == expected_a1
        result = store.purge(target, TenantSelection(T_MAIN))
        assert result.deleted == 1_500 - expected_a1
        assert store.verify(target, TenantSelection(T_MAIN)) == 0
        assert store.count(target, TenantSelection(T_LONG)) == 1_500
        assert client.exists(f"cc:{T_MAIN}:queue:q") == 1
    finally:
        cluster.stop()
