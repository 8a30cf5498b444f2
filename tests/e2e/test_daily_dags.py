"""The daily DAGs end to end with ``dag.test()`` over seeded data in all four real stores.

One private world (MySQL database, ledger, bucket, tenants) for the module; every assertion
compares the stores' state after a run with the state the policy demands as of that run.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator

import pytest
import yaml

from include.retention.expiry import cutoff
from include.retention.policy import DEFAULT_POLICY_PATH, Policy

pytestmark = pytest.mark.servers

AS_OF = date(2026, 11, 28)
NORMAL = ("7712", "77123", "7715", "7716")  # the first two share a prefix on purpose
EXTENDED = "7713"  # bought 12 months of call data and analytics
HELD = "7714"  # whole tenant on legal hold
TENANTS = (*NORMAL, EXTENDED, HELD)


@pytest.fixture(scope="module")
def world(servers, airflow_db) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with seeded_world(servers, AS_OF) as seeded:
        yield seeded


def new_namespace() -> Any:
    """Private database, ledger and bucket names for one world."""
    from devservers import connections

    suffix = uuid.uuid4().hex[:8]
    return connections.Namespace(f"cc_e2e_{suffix}", f"ledger_e2e_{suffix}", connections.TEST.redis_db,
                                 f"cc-e2e-{suffix}")


@contextmanager
def seeded_world(servers: dict[str, Any], as_of: date, *, ns: Any = None, tenants: tuple[str, ...] = TENANTS,
                 months: int = 9) -> Iterator[dict[str, Any]]:
    """Seed a small world whose history ends the day before ``as_of`` and point the retention
    connections at it; ``env`` holds them for other processes. Seeded as root; MySQL is then
    reached as the world's least-privilege account (``devservers.mysql_users``). Dropped on exit.

    :param ns: where the world lives (default: a new namespace); give it to know the
        connections before seeding.
    """
    from devservers import connections, mysql_users
    from devdata.seed import seed_all
    from devdata.world import SeedConfig
    from include.retention.ledger.db import connect, plain_cursor
    from include.retention.ledger.holds import place_hold
    from include.retention.ledger.migrations import migrate
    from include.retention.ledger.overrides import set_override

    ns = ns or new_namespace()
    env = connections.airflow_connections(servers, ns)
    config = SeedConfig(
        seed=11, tenant_ids=tenants, agents_per_tenant=3, admins_per_tenant=1, calls_per_day_per_tenant=4,
        months=months, as_of=as_of, recording_share=0.2, service_record_share=0.5, terminated_tenants=0,
        customers_per_tenant=20, backup_days=35, sessions_per_agent=1,
    )
    mariadb = servers["mariadb"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        with pytest.MonkeyPatch.context() as seeding:  # root creates the schema; gone before any DAG runs
            for key, value in connections.root_mysql_connection(mariadb, ns.mysql_database).items():
                seeding.setenv(key, value)
            seed_all(config, mysql_conn_id=connections.ROOT_MYSQL_CONN_ID, mysql_database=ns.mysql_database,
                     reset_mysql=True, cos_bucket=ns.bucket, stores=("mysql", "cos"))
        mysql_users.ensure_store_user(mariadb, ns.mysql_database, ns.ledger_database)
        migrate()
        set_override(EXTENDED, "call_data", 12, reason="bought extended storage", set_by="e2e")
        set_override(EXTENDED, "call_analytics", 12, reason="bought extended storage", set_by="e2e")
        place_hold(HELD, reason="litigation", placed_by="e2e")
        try:
            yield {"ns": ns, "config": config, "env": env}
        finally:
            _drop_world(ns, tenants, mariadb)


def _drop_world(ns: Any, tenants: tuple[str, ...], mariadb: Any) -> None:
    import MySQLdb
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from devservers import mysql_users

    db = MySQLdb.connect(host="127.0.0.1", user="root")
    try:
        for name in (ns.mysql_database, ns.ledger_database):
            db.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        db.close()
    mysql_users.drop_store_user(mariadb, ns.mysql_database)
    from include.retention.policy import CosTarget, load_policy
    from include.retention.selections import TenantSelection
    from include.retention.stores.cos import CosStore

    policy = load_policy()
    store = CosStore(bucket=ns.bucket, timezone=policy.timezone)
    for target in policy.targets:
        if isinstance(target, CosTarget):
            for tenant in tenants:
                store.purge(target, TenantSelection(tenant))
    assert cos_keys(ns, "") == [], "the world's bucket should be empty now"
    S3Hook(aws_conn_id="retention_cos").get_conn().delete_bucket(Bucket=ns.bucket)


# --------------------------------------------------------------------------- state


def mysql_rows(ns: Any, table: str, column: str) -> list[tuple[str, datetime]]:
    import MySQLdb

    db = MySQLdb.connect(host="127.0.0.1", user="root", db=ns.mysql_database)
    try:
        cur = db.cursor()
        cur.execute(f"SELECT tenant_id, {column} FROM {table}")
        return [(str(t), ts) for t, ts in cur.fetchall()]
    finally:
        db.close()


def cos_keys(ns: Any, prefix: str) -> list[str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id="retention_cos").get_conn()
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=ns.bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def snapshot(policy: Policy, ns: Any) -> dict[str, Counter[tuple[str, str]]]:
    """Per target, a multiset of (tenant, day) of every record: the whole observable state."""
    tz = policy.timezone
    out: dict[str, Counter[tuple[str, str]]] = {}
    for name, (table, column) in {
        "call_data.call_records": ("call_records", "started_at"),
        "call_analytics.call_metrics": ("call_metrics", "metric_date"),
        "call_analytics.service_records": ("service_records", "created_at"),
    }.items():
        out[name] = Counter(
            (t, ts.replace(tzinfo=timezone.utc).astimezone(tz).date().isoformat()) for t, ts in mysql_rows(ns, table, column)
        )
    for name in ("call_data.recordings", "call_data.call_data_backups", "call_analytics.call_analytics_backups",
                 "agent_info.agent_info_backups"):
        target = policy.target(name)
        first_literal = target.prefix.text.split("{")[0]
        counter: Counter[tuple[str, str]] = Counter()
        for key in cos_keys(ns, first_literal):
            parsed = target.prefix.parse(key)
            if parsed:
                counter[(str(parsed["tenant"]), parsed["date"].isoformat())] += 1  # type: ignore[union-attr]
        out[name] = counter
    return out


def expected_after(policy: Policy, before: dict[str, Counter[tuple[str, str]]], as_of_day: date) -> dict[str, Counter[tuple[str, str]]]:
    """The policy's verdict, computed independently of the planner: keep a (tenant, day) when
    the day is on or after the tenant's cut-off day, or the tenant is held."""
    tz = policy.timezone
    as_of = datetime.combine(as_of_day, time.min, tzinfo=tz)
    out = {}
    for name, counter in before.items():
        target = policy.target(name)
        kept: Counter[tuple[str, str]] = Counter()
        for (tenant, day), n in counter.items():
            months = 12 if tenant == EXTENDED and target.retention.extendable else None
            cut = cutoff(as_of, target.retention, tz, months=months)
            assert cut is not None
            if tenant == HELD or date.fromisoformat(day) >= cut.astimezone(tz).date():
                kept[(tenant, day)] = n
        out[name] = kept
    return out


def run(category: str, as_of_day: date, conf: dict[str, Any] | None = None) -> Any:
    """Run one category's DAG as scheduled for ``as_of_day`` (midnight, policy zone)."""
    from devservers.airflow_local import load_dags, run_dag
    from include.retention.policy import load_policy

    policy = load_policy()
    logical = datetime.combine(as_of_day, time.min, tzinfo=policy.timezone)
    return run_dag(load_dags()[f"retention_{category}"], logical_date=logical, conf=conf)


def audit_rows(run_id: str) -> list[dict[str, Any]]:
    from include.retention.ledger.db import connect, plain_cursor
    from include.retention.ledger.holds import place_hold
    from include.retention.ledger.migrations import migrate
    from include.retention.ledger.overrides import set_override

    with connect() as conn:
        cur = plain_cursor(conn)
        cur.execute("SELECT target, selection_kind, planned, deleted, dry_run, outcome, override_reason "
                    "FROM purge_audit WHERE run_id = %s", (run_id,))
        cols = ["target", "kind", "planned", "deleted", "dry_run", "outcome", "override_reason"]
        return [dict(zip(cols, r)) for r in cur.fetchall()]



# --------------------------------------------------------------------------- tests (in order)


def test_circuit_breaker_stops_a_policy_mistake_before_anything_is_deleted(world, policy, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from devservers.airflow_local import load_dags, run_dag

    bad = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    bad["categories"]["call_data"]["retention"] = {"months": 1, "extendable": True}  # typo: 1 instead of 6
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(bad))
    monkeypatch.setenv("RETENTION_POLICY_PATH", str(path))  # the DAG file reads it when parsed
    dag = load_dags()["retention_call_data"]
    assert "1 calendar months" in dag.description
    before = snapshot(policy, world["ns"])
    dag_run = run_dag(dag, logical_date=datetime.combine(AS_OF, time.min, tzinfo=policy.timezone))
    assert str(dag_run.state) == "failed"
    assert snapshot(policy, world["ns"]) == before
    assert audit_rows(dag_run.run_id) == []


def test_the_breaker_measures_each_tenant(world, policy, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every tenant but one bought 12 months or is held, so a typo (1 month for 6) wipes most of
    that one tenant's data while staying far under half of each target. The per-tenant share
    trips the breaker before anything is deleted, and the error names the tenant and its numbers."""
    from devservers.airflow_local import load_dags
    from include.retention.crypto import RetentionCrypto
    from include.retention.daily.breaker import CircuitBreakerTripped, RunOptions
    from include.retention.daily.plan import plan_category
    from include.retention.ledger.facts import load_facts
    from include.retention.ledger.overrides import clear_override, set_override
    from include.retention.policy import load_policy

    victim, others = NORMAL[0], NORMAL[1:]
    bad = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    bad["categories"]["call_data"]["retention"] = {"months": 1, "extendable": True}  # typo: 1 instead of 6
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(bad))
    monkeypatch.setenv("RETENTION_POLICY_PATH", str(path))
    for tenant in others:
        set_override(tenant, "call_data", 12, reason="bought extended storage", set_by="e2e")
    try:
        as_of = datetime.combine(AS_OF, time.min, tzinfo=policy.timezone)
        crypto = RetentionCrypto.from_connection()
        with pytest.raises(CircuitBreakerTripped) as tripped:
            plan_category(load_policy(path), "call_data", as_of, RunOptions(tenant_min_records=100), crypto=crypto,
                          facts=load_facts(as_of, crypto))
        message = str(tripped.value)
        assert f"call_data.call_records (tenant {victim})" in message and "of one tenant's records" in message
        # The same plan without the per-tenant line would pass: every target stays under half.
        the_plan = plan_category(load_policy(path), "call_data", as_of,
                                 RunOptions(tenant_min_records=10**9), crypto=crypto, facts=load_facts(as_of, crypto))
        assert all(line["share"] <= 0.5 for line in the_plan["breaker"])
        assert the_plan["breaker_tenants"] == []
        # The DAG's param reaches the planner (the run fails in plan as the test above shows).
        assert load_dags()["retention_call_data"].params["tenant_min_records"] == 1000
    finally:
        for tenant in others:
            clear_override(tenant, "call_data")


def test_a_tripped_breaker_fails_at_once_without_retries(world, policy, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The DAG keeps its retries (3), but a tripped breaker is not retried: the plan would trip
    it again. The run fails on the first try, with the numbers in the task's error."""
    from devservers.airflow_local import load_dags

    from tests.e2e.conftest import task_states

    bad = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    bad["categories"]["call_data"]["retention"] = {"months": 1, "extendable": True}  # typo: 1 instead of 6
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(bad))
    monkeypatch.setenv("RETENTION_POLICY_PATH", str(path))
    dag = load_dags()["retention_call_data"]
    plan_task = dag.get_task("plan")
    assert plan_task.retries == 3
    plan_task.retry_delay = timedelta(seconds=1)  # were it retried, the test would see it, not wait for it
    before = snapshot(policy, world["ns"])
    dag_run = dag.test(logical_date=datetime.combine(AS_OF, time.min, tzinfo=policy.timezone))
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run)["plan"] == "failed"
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = dag_run.get_task_instance("plan", session=session)
        assert ti is not None and ti.try_number == 1
    assert snapshot(policy, world["ns"]) == before


def test_dry_run_counts_and_deletes_nothing(world, policy) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(policy, world["ns"])
    dag_run = run("call_data", AS_OF, conf={"dry_run": True})
    assert str(dag_run.state) == "success"
    assert snapshot(policy, world["ns"]) == before
    rows = audit_rows(dag_run.run_id)
    assert rows and all(r["dry_run"] for r in rows)
    expected = expected_after(policy, before, AS_OF)
    would = sum(sum(before[n].values()) - sum(expected[n].values()) for n in before if n.startswith("call_data."))
    assert sum(r["planned"] for r in rows) == would > 0


def only(state: dict[str, Counter[tuple[str, str]]], category: str) -> dict[str, Counter[tuple[str, str]]]:
    return {k: v for k, v in state.items() if k.startswith(category + ".")}


def test_backfill_in_any_order_ends_exactly_at_the_policy_state(world, policy) -> None:  # type: ignore[no-untyped-def]
    """call_data runs for D-10 .. D in shuffled order: each leaves exactly the state its date
    demands when it is the latest so far, and the end state is exactly that of one run for D.
    Then the other dated categories run once for D."""
    initial = snapshot(policy, world["ns"])
    conf = {"allow_large_purge": True, "override_reason": "first run over backlog"}
    days = [AS_OF - timedelta(days=n) for n in (10, 3, 0, 1)]
    random.Random(5).shuffle(days)
    latest = date.min
    for day in days:
        assert str(run("call_data", day, conf=conf).state) == "success", day
        latest = max(latest, day)
        assert only(snapshot(policy, world["ns"]), "call_data") == only(expected_after(policy, initial, latest),
                                                                           "call_data"), f"after the run for {day}"
    assert latest == AS_OF
    for category in ("call_analytics", "agent_info"):
        assert str(run(category, AS_OF, conf=conf).state) == "success", category
    final = snapshot(policy, world["ns"])
    assert final == expected_after(policy, initial, AS_OF)
    # Held and extended tenants kept everything; normal tenants lost their expired days only.
    for name in ("call_data.call_records", "call_data.recordings", "call_analytics.service_records"):
        assert {k: v for k, v in final[name].items() if k[0] in (HELD, EXTENDED)} == {
            k: v for k, v in initial[name].items() if k[0] in (HELD, EXTENDED)
        }
        assert sum(v for k, v in final[name].items() if k[0] in NORMAL) < sum(
            v for k, v in initial[name].items() if k[0] in NORMAL
        )


def test_rerun_deletes_nothing(world, policy) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(policy, world["ns"])
    dag_run = run("call_data", AS_OF)
    assert str(dag_run.state) == "success"
    assert snapshot(policy, world["ns"]) == before
    assert all(r["deleted"] == 0 for r in audit_rows(dag_run.run_id))


def test_override_of_the_breaker_is_recorded_in_the_audit(world, policy) -> None:  # type: ignore[no-untyped-def]
    from include.retention.ledger.db import connect, plain_cursor
    from include.retention.ledger.holds import place_hold
    from include.retention.ledger.migrations import migrate
    from include.retention.ledger.overrides import set_override

    with connect() as conn:
        cur = plain_cursor(conn)
        cur.execute("SELECT COUNT(*) FROM purge_audit WHERE override_reason = %s AND deleted > 0",
                    ("first run over backlog",))
        assert cur.fetchone()[0] > 0


def test_the_audit_says_why_each_purge_ran_and_what_it_kept_out(world, policy) -> None:  # type: ignore[no-untyped-def]
    """Every audit row of the backfill names its rule as data (policy months, or the extended
    retention with its override id) and what it kept out and why (the held tenant with its
    hold id, the extended tenant with its override id). No personal data: ids only."""
    import json

    from include.retention.ledger.db import connect, plain_cursor
    from include.retention.ledger.holds import list_holds
    from include.retention.ledger.overrides import list_overrides

    (hold,) = [h for h in list_holds() if h.tenant_id == HELD]
    override = {o.category: o.id for o in list_overrides() if o.tenant_id == EXTENDED}
    with connect() as conn:
        cur = plain_cursor(conn)
        cur.execute("SELECT target, tenant_id, rule, withheld FROM purge_audit WHERE dry_run = 0 AND category = 'call_data'"
                    " AND deleted > 0")
        rows = [(t, tenant, json.loads(r), json.loads(w) if w else {}) for t, tenant, r, w in cur.fetchall()]
    assert rows, "the backfill deleted call data"
    records = [r for r in rows if r[0] == "call_records"]
    assert records and all(rule == {"rule": "policy", "months": 6} for _, tenant, rule, _ in records if tenant is None)
    shared = [w for _, tenant, _, w in records if tenant is None]
    assert shared and all(w["tenants"] == [
        {"tenant": EXTENDED, "why": "extended", "override_id": override["call_data"]},
        {"tenant": HELD, "why": "legal_hold", "hold_ids": [hold.id]},
    ] for w in shared)
    recordings = [r for r in rows if r[0] == "recordings"]
    assert recordings and all(tenant in NORMAL and rule == {"rule": "policy", "months": 6}
                              and {"tenant": HELD, "why": "legal_hold", "hold_ids": [hold.id]} in w["tenants"]
                              for _, tenant, rule, w in recordings)
    with connect() as conn:
        cur = plain_cursor(conn)
        cur.execute("SELECT rule FROM purge_audit WHERE tenant_id = %s AND target = 'call_records'", (EXTENDED,))
        extended = [json.loads(r) for (r,) in cur.fetchall()]
    assert extended and all(r == {"rule": "extended", "months": 12, "policy_months": 6,
                                  "override_id": override["call_data"]} for r in extended)


def test_a_run_dated_before_2026_runs_its_tasks_and_deletes_what_expired(servers, airflow_db) -> None:  # type: ignore[no-untyped-def]
    """A user catching up an old bucket runs the DAG as of 1 September 2024. A start_date after
    that date would make Airflow create no task instances and report success with nothing
    deleted; the DAGs' start_date lies before any date the policy could hold data for. The
    run crosses the leap day: 29 February 2024 is kept through 31 August and expires as of
    1 September (six calendar months, clamped to the month's end)."""
    from include.retention.policy import load_policy

    from tests.e2e.conftest import task_states

    as_of = date(2024, 9, 1)
    policy = load_policy()
    with seeded_world(servers, as_of) as old:
        before = snapshot(policy, old["ns"])
        assert any(day == "2024-02-29" for (_, day) in before["call_data.call_records"]), "the world must hold the leap day"
        dag_run = run("call_data", as_of)
        assert str(dag_run.state) == "success"
        assert task_states(dag_run).get("plan") == "success"
        after = snapshot(policy, old["ns"])
        assert only(after, "call_data") == only(expected_after(policy, before, as_of), "call_data")
        assert only(after, "call_data") != only(before, "call_data"), "something had expired as of that date"
        assert not any(day == "2024-02-29" for (tenant, day) in after["call_data.call_records"]
                       if tenant not in (HELD, EXTENDED))  # both keep it: a hold, 12 months bought


def test_the_dags_reach_mysql_as_the_least_privilege_account_and_still_purge(servers, airflow_db) -> None:  # type: ignore[no-untyped-def]
    """The connections a world gives its DAGs (``connections.airflow_connections``, as the demo,
    ``scripts/airflow.sh`` and the cluster do) log in as the world's account from
    ``devservers.mysql_users``, never as root, and that account holds exactly the grants
    ``include.retention.cli.grants`` generates. A daily run as it still leaves the policy's
    state and drops whole expired partitions (MariaDB 10.11 wants ALTER and DROP for that).
    That the account is refused outside its grants is ``tests/stores/test_mysql.py``'s."""
    import os
    from urllib.parse import urlsplit

    import MySQLdb
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    from devservers.mysql_users import store_account
    from include.retention.cli.grants import DEFAULT_PARTITIONED, mysql_table_privileges
    from include.retention.ledger.db import connect, plain_cursor
    from include.retention.policy import load_policy

    policy = load_policy()
    mariadb = servers["mariadb"]
    with seeded_world(servers, AS_OF, tenants=(NORMAL[0],)) as small:  # no held rows: whole partitions expire
        ns = small["ns"]
        account = store_account(mariadb, ns.mysql_database)
        logins = {key: urlsplit(value).username for key, value in os.environ.items()
                  if key.startswith("AIRFLOW_CONN_") and value.startswith("mysql://")}
        assert logins["AIRFLOW_CONN_RETENTION_MYSQL"] == logins["AIRFLOW_CONN_RETENTION_LEDGER"] == account.login
        assert "root" not in logins.values(), logins

        before = snapshot(policy, ns)
        dag_run = run("call_data", AS_OF)
        assert str(dag_run.state) == "success"
        after = only(snapshot(policy, ns), "call_data")
        assert after == only(expected_after(policy, before, AS_OF), "call_data") != only(before, "call_data")
        with connect() as ledger:
            cur = plain_cursor(ledger)
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0] == f"{account.login}@{account.host}"
            cur.execute("SELECT method FROM purge_audit WHERE run_id = %s AND target = 'call_records' AND deleted > 0",
                        (dag_run.run_id,))
            assert any("drop_partition" in method for (method,) in cur.fetchall())
        store = MySqlHook(mysql_conn_id="retention_mysql").get_conn()  # the connection the run's tasks read
        try:
            cur = store.cursor()
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0] == f"{account.login}@{account.host}"
        finally:
            store.close()

        root = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user=mariadb.login or "root",
                               passwd=mariadb.password or "")
        try:
            cur = root.cursor()
            grantee = (f"'{account.login}'@'{account.host}'",)
            cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES"
                        " WHERE GRANTEE = %s", grantee)
            tables = set(cur.fetchall())
            cur.execute("SELECT DISTINCT TABLE_SCHEMA FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = %s",
                        grantee)
            schemas = {str(name).replace("\\_", "_") for (name,) in cur.fetchall()}
            cur.execute("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s", grantee)
            server_wide = {p for (p,) in cur.fetchall()}
        finally:
            root.close()
    assert tables == {(ns.mysql_database, table, privilege)
                      for table, privileges in mysql_table_privileges(policy, DEFAULT_PARTITIONED).items()
                      for privilege in privileges}
    assert schemas == {ns.ledger_database}
    assert server_wide == {"USAGE"}
