"""The package on a distributed Airflow: CeleryExecutor on PostgreSQL with two workers
(``scripts/cluster.sh``'s cluster, ``tests/e2e/cluster_support.py``), driven through the
REST API as an operator drives it, over a world seeded in all four real stores.

In order, on one cluster:

1. An outage, then a backfill: ``retention_call_data`` backfilled over the three days before
   D (D = today in the policy zone) while its schedule resumes with D's run. Every day runs
   once, the backfill in date order, and the audit counts each deletion once.
2. The five daily DAGs for D and two requests (a termination, a phone-number deletion)
   triggered at once: the exact end state per store, mapped purges on both workers, one
   settled audit row per purge, what left the stores equal to what the audit counts, both
   certificates issued.
3. Worker loss: a worker SIGKILLed (its whole process group) mid-purge; Airflow fails the
   task instance when its heartbeat stops and retries it on the other worker; the end state
   is exact, the killed attempt is ``interrupted`` and settled, nothing is counted twice.
4. Scheduler loss: the scheduler SIGKILLed mid-run and started again; the run completes and
   no purge ran twice, let alone at the same time.
5. The SLA monitor's T-7 and T-0 mails are sent from a worker, to the SMTP server its
   connection names.
6. RabbitMQ as the broker (when one answers on 127.0.0.1:5672, as ``cluster.sh up --broker
   amqp`` expects): the scheduler and both workers restarted on it, a termination runs to
   completion through it.

The store connections are what a deployment gives the cluster: MySQL as the least-privilege
user of ``include.retention.grants`` (``seeded_world``), paced (batches of 100 rows, 0.15 s
apart, through the connection's ``retention_tuning`` extra) so that a kill lands mid-purge.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from include.retention.policy import MySqlTarget, Policy, RedisTarget
from include.retention.request_states import REQUESTS_DAG_ID
from include.retention.timeutil import local_day, wall_clock
from tests.e2e.cluster_support import CLUSTER_REDIS_DB, Cluster, midnight, private_elasticsearch, running_cluster
from tests.e2e.conftest import RECIPIENT, Inbox, base_conf, drop_keys_and_log_indices, es_client
from tests.e2e.test_daily_dags import TENANTS, expected_after, new_namespace, only, seeded_world, snapshot

pytestmark = [pytest.mark.servers, pytest.mark.slow]

UTC = timezone.utc
CATEGORIES = ("log_data", "agent_info", "call_data", "call_analytics", "configuration")
TERMINATED = "7716"
DELETION_TENANT = "77123"  # shares a prefix with 7712, which keeps everything
BACKFILL_DAYS = 3
#: MySQL paced so that a purge of a few thousand rows lasts seconds (the connection's extra).
PACING = {"batch_size": 100, "sleep_between_batches": 0.15}
BIG_ROWS = 3000  # call records of each tenant a fault test terminates
FAULT_TENANTS = {"worker_loss": "7791", "scheduler_loss": "7792", "rabbitmq": "7793"}
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


# --------------------------------------------------------------------------- the world


def paced(mysql_connection: str) -> str:
    """The MySQL connection (URI or JSON) as JSON, with the pacing in its ``retention_tuning`` extra."""
    from airflow.models.connection import Connection

    conn = (Connection.from_json(mysql_connection, conn_id="retention_mysql") if mysql_connection.startswith("{")
            else Connection(conn_id="retention_mysql", uri=mysql_connection))
    extra = {**conn.extra_dejson, "retention_tuning": PACING}
    return json.dumps({"conn_type": conn.conn_type, "host": conn.host, "port": conn.port, "login": conn.login,
                       "password": conn.password, "schema": conn.schema, "extra": extra})


def root_query(database: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import MySQLdb

    db = MySQLdb.connect(host="127.0.0.1", user="root", db=database, charset="utf8mb4", autocommit=True)
    try:
        cur = db.cursor()
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        db.close()


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    box.controller.start()
    try:
        yield box
    finally:
        box.controller.stop()


@pytest.fixture(scope="module")
def world(servers: dict[str, Any], airflow_db: Any, policy: Policy,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Six tenants, seven months, in MySQL, COS, Redis and Elasticsearch (``seeded_world``).

    The world's tenants are those of ``test_daily_dags``; their Redis keys go to a db of their
    own and their log indices to a stand-in of their own, so that the rest of the suite may run
    at the same time (every other store of a world is private to it already).
    """
    import dataclasses

    from devdata.seed import seed_all

    today = local_day(wall_clock(), policy.timezone)
    ns = dataclasses.replace(new_namespace(), redis_db=CLUSTER_REDIS_DB)
    with private_elasticsearch(servers["elasticsearch"], tmp_path_factory.mktemp("cluster-es")) as es:
        own = {**servers, "elasticsearch": es}
        with seeded_world(own, today, months=7, ns=ns) as seeded:
            try:
                seed_all(seeded["config"], stores=("redis", "elasticsearch"))
                yield {**seeded, "today": today, "servers": own}
            finally:
                _drop_what_seeded_world_leaves(own, seeded["ns"], (*TENANTS, *FAULT_TENANTS.values()))


def _drop_what_seeded_world_leaves(servers: dict[str, Any], ns: Any, tenants: tuple[str, ...]) -> None:
    """Redis keys and log indices of the world's tenants, and the certificates in its bucket."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from include.retention.stores.cos_client import install_content_md5

    s3 = install_content_md5(S3Hook(aws_conn_id="retention_cos").get_conn())
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=ns.bucket, Prefix="certificates/"):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys:
            s3.delete_objects(Bucket=ns.bucket, Delete={"Objects": keys, "Quiet": True})
    drop_keys_and_log_indices(servers, tenants)


@pytest.fixture(scope="module")
def cluster(world: dict[str, Any], inbox: Inbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = dict(world["env"])
    env["AIRFLOW_CONN_RETENTION_MYSQL"] = paced(env["AIRFLOW_CONN_RETENTION_MYSQL"])
    env["AIRFLOW_CONN_RETENTION_SMTP"] = json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": inbox.port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "retention@example.test",
                  "retry_limit": 0, "timeout": 10},
    })
    env["RETENTION_SLA_EMAIL"] = RECIPIENT
    with running_cluster(tmp_path_factory.mktemp("cluster"), env, secrets.token_hex(3)) as running:
        yield running


# --------------------------------------------------------------------------- observing


def full_state(policy: Policy, world: dict[str, Any], phone: str | None = None) -> dict[str, Counter[Any]]:
    """Everything observable per store: the dated targets' (tenant, day) multisets, the undated
    MySQL targets' rows per tenant, Redis keys per (target or ``other``, tenant), log documents
    per tenant (and those naming ``phone``)."""
    from airflow.providers.redis.hooks.redis import RedisHook

    ns = world["ns"]
    state: dict[str, Counter[Any]] = dict(snapshot(policy, ns))
    for target in policy.targets:
        if isinstance(target, MySqlTarget) and target.qualified_name not in state:
            rows = root_query(ns.mysql_database, f"SELECT {target.tenant_column}, COUNT(*) FROM `{target.table}` "
                                                 f"GROUP BY {target.tenant_column}")
            state[target.qualified_name] = Counter({str(t): int(n) for t, n in rows})
    redis_targets = [t for t in policy.targets if isinstance(t, RedisTarget)]
    keys: Counter[Any] = Counter()
    r = RedisHook(redis_conn_id="retention_redis").get_conn()
    for tenant in (*TENANTS, *FAULT_TENANTS.values()):
        for raw in r.scan_iter(match=f"cc:{tenant}:*", count=1000):
            key = raw.decode()
            owner = next((t.qualified_name for t in redis_targets if t.key.parse(key)), "other")
            keys[(owner, tenant)] += 1
    state["redis"] = keys
    es = es_client(world["servers"])
    try:
        es.indices.refresh(index="cc-logs-*")
        docs: Counter[Any] = Counter()
        for tenant in TENANTS:
            docs[tenant] = int(es.count(index=f"cc-logs-{tenant}-*", allow_no_indices=True)["count"])
            if phone:
                docs[(tenant, phone)] = int(es.count(index=f"cc-logs-{tenant}-*", allow_no_indices=True,
                                                     query={"term": {"phone_number": phone}})["count"])
        state["log_data.cc_logs"] = +docs
    finally:
        es.close()
    return state


def audit(world: dict[str, Any], run_ids: list[str]) -> list[dict[str, Any]]:
    marks = ",".join(["%s"] * len(run_ids))
    cols = ["id", "run_id", "category", "target", "selection_kind", "tenant_id", "planned", "deleted", "outcome",
            "attempt_key", "settled_by", "dry_run", "task_id", "started_at", "finished_at"]
    rows = root_query(world["ns"].ledger_database,
                      f"SELECT {', '.join(cols)} FROM purge_audit WHERE run_id IN ({marks}) ORDER BY id", tuple(run_ids))
    return [dict(zip(cols, row)) for row in rows]


def request_row(world: dict[str, Any], reference: str) -> dict[str, Any]:
    cols = ["request_id", "state", "tenant_id"]
    rows = root_query(world["ns"].ledger_database,
                      f"SELECT {', '.join(cols)} FROM requests WHERE reference = %s", (reference,))
    assert len(rows) == 1, (reference, rows)
    return dict(zip(cols, rows[0]))


def certificates_of(world: dict[str, Any], request_id: str) -> int:
    return int(root_query(world["ns"].ledger_database, "SELECT COUNT(*) FROM certificates WHERE request_id = %s",
                          (request_id,))[0][0])


def purge_hosts(cluster: Cluster, dag_id: str, run_id: str) -> list[tuple[str, int, str]]:
    """(task, map index, worker) of the run's mapped purge task instances."""
    return [(t["task_id"], t["map_index"], str(t.get("hostname")))
            for t in cluster.task_instances(dag_id, run_id) if t["task_id"].startswith("purge_") and t["map_index"] >= 0]


def removed_per_target(before: dict[str, Counter[Any]], after: dict[str, Counter[Any]], policy: Policy) -> Counter[str]:
    """Records that left each target (Redis: keys of the target's families)."""
    out: Counter[str] = Counter()
    for target in policy.targets:
        name = target.qualified_name
        if name == "log_data.cc_logs":
            b = sum(v for k, v in before[name].items() if isinstance(k, str))
            a = sum(v for k, v in after[name].items() if isinstance(k, str))
        elif isinstance(target, RedisTarget):
            b = sum(v for (owner, _), v in before["redis"].items() if owner == name)
            a = sum(v for (owner, _), v in after["redis"].items() if owner == name)
        else:
            b, a = sum(before[name].values()), sum(after[name].values())
        if b - a:
            out[name] = b - a
    return out


def deleted_per_target(rows: list[dict[str, Any]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for row in rows:
        out[f"{row['category']}.{row['target']}"] += int(row["deleted"])
    return +out


# --------------------------------------------------------------------------- 1. outage and backfill

SHARED: dict[str, Any] = {}  # what the tests in order hand to each other


def test_a_backfill_after_an_outage_runs_each_day_once_in_date_order(cluster: Cluster, world: dict[str, Any],
                                                                    policy: Policy) -> None:
    dag_id = "retention_call_data"
    today: date = world["today"]
    days = [today - timedelta(days=n) for n in range(BACKFILL_DAYS, 0, -1)]
    before = full_state(policy, world)
    cluster.wait_parsed(dag_id)
    status, body = cluster.call("POST", "/api/v2/backfills", {
        "dag_id": dag_id, "from_date": midnight(days[0], policy.timezone), "to_date": midnight(days[-1], policy.timezone),
        "max_active_runs": 1, "reprocess_behavior": "none"})
    assert status == 200, body
    cluster.unpause(dag_id)  # the schedule resumes: the scheduler creates D's run
    deadline = time.monotonic() + 900
    runs = cluster.runs(dag_id)
    while not (len(runs) == BACKFILL_DAYS + 1 and all(r["state"] in ("success", "failed") for r in runs)):
        assert time.monotonic() < deadline, f"{[(r['dag_run_id'], r['state']) for r in runs]}\n{cluster.diagnostics()}"
        time.sleep(2)
        runs = cluster.runs(dag_id)
    assert [r["state"] for r in runs] == ["success"] * (BACKFILL_DAYS + 1), cluster.diagnostics()
    backfilled = [r for r in runs if r["run_type"] == "backfill"]
    scheduled = [r for r in runs if r["run_type"] == "scheduled"]
    assert len(backfilled) == BACKFILL_DAYS and len(scheduled) == 1, runs
    as_of = [datetime.fromisoformat(r["data_interval_end"]).astimezone(policy.timezone) for r in backfilled + scheduled]
    assert [d.date() for d in as_of] == [*days, today] and {d.time() for d in as_of} == {datetime.min.time()}
    for earlier, later in zip(backfilled, backfilled[1:]):  # max_active_runs 1: one after another
        assert later["start_date"] >= earlier["end_date"], (earlier, later)

    after = full_state(policy, world)
    assert only(after, "call_data") == only(dated_expected(policy, before, today), "call_data")
    assert {k: v for k, v in after.items() if not k.startswith("call_data.")} == \
        {k: v for k, v in before.items() if not k.startswith("call_data.")}, "only call_data's DAG ran"
    rows = audit(world, [r["dag_run_id"] for r in runs])
    assert {(r["outcome"], bool(r["dry_run"])) for r in rows} == {("ok", False)}, rows
    removed = removed_per_target(before, after, policy)
    assert deleted_per_target(rows) == removed and sum(removed.values()) > 0
    SHARED["hosts"] = [h for r in runs for h in purge_hosts(cluster, dag_id, r["dag_run_id"])]


# --------------------------------------------------------------------------- 2. the day's runs


def _phone_of(world: dict[str, Any], tenant: str, since: date) -> str:
    """The most-called customer number of ``tenant`` since ``since``: records the policy keeps."""
    rows = root_query(world["ns"].mysql_database,
                      "SELECT customer_number, COUNT(*) n FROM call_records WHERE tenant_id = %s AND started_at >= %s "
                      "GROUP BY customer_number ORDER BY n DESC, customer_number LIMIT 1", (tenant, since))
    return str(rows[0][0])


def _records_of(world: dict[str, Any], policy: Policy, tenant: str, phone: str) -> dict[str, Counter[Any]]:
    """(tenant, day) of every record naming ``phone``: call records, service records, recordings."""
    tz = policy.timezone
    out: dict[str, Counter[Any]] = {}
    for name, table, column in (("call_data.call_records", "call_records", "started_at"),
                                ("call_analytics.service_records", "service_records", "created_at")):
        rows = root_query(world["ns"].mysql_database,
                          f"SELECT {column} FROM {table} WHERE tenant_id = %s AND customer_number = %s", (tenant, phone))
        out[name] = Counter((tenant, ts.replace(tzinfo=UTC).astimezone(tz).date().isoformat()) for (ts,) in rows)
    keys = root_query(world["ns"].mysql_database, "SELECT recording_key FROM call_records WHERE tenant_id = %s AND "
                      "customer_number = %s AND recording_key IS NOT NULL", (tenant, phone))
    target = policy.target("call_data.recordings")
    out["call_data.recordings"] = Counter((tenant, target.prefix.parse(k)["date"].isoformat())  # type: ignore[union-attr]
                                          for (k,) in keys)
    return out


def expected_end(policy: Policy, before: dict[str, Counter[Any]], today: date, phone: str,
                 phone_records: dict[str, Counter[Any]]) -> dict[str, Counter[Any]]:
    """The policy's verdict for D, then the termination (nothing of the tenant is left in any
    target) and the deletion (nothing naming the number is left; backups roll off by age)."""
    dated = dated_expected(policy, before, today)
    out: dict[str, Counter[Any]] = {}
    for name, counter in before.items():
        kept = Counter(dated[name]) if name in dated else Counter(counter)
        if name == "redis":
            kept = Counter({k: v for k, v in kept.items() if k[0] == "other" or k[1] != TERMINATED})
        elif name == "log_data.cc_logs":
            kept[TERMINATED] = 0
            kept.pop((TERMINATED, phone), None)
            kept[DELETION_TENANT] -= kept.pop((DELETION_TENANT, phone), 0)
        else:
            kept = Counter({k: v for k, v in kept.items() if (k[0] if isinstance(k, tuple) else k) != TERMINATED})
        if name in phone_records:
            kept -= phone_records[name]
        out[name] = +kept
    return out


def dated_expected(policy: Policy, before: dict[str, Counter[Any]], day: date) -> dict[str, Counter[Any]]:
    """``expected_after`` (the dag.test() tests' oracle) over the dated targets of ``before``."""
    dated = {"call_data.call_records", "call_analytics.call_metrics", "call_analytics.service_records",
             "call_data.recordings", "call_data.call_data_backups", "call_analytics.call_analytics_backups",
             "agent_info.agent_info_backups"}
    return expected_after(policy, {k: v for k, v in before.items() if k in dated}, day)


def test_the_five_daily_dags_and_two_requests_end_exactly_at_the_policy_state_on_both_workers(
        cluster: Cluster, world: dict[str, Any], policy: Policy) -> None:
    today: date = world["today"]
    phone = _phone_of(world, DELETION_TENANT, today - timedelta(days=60))
    phone_records = _records_of(world, policy, DELETION_TENANT, phone)
    assert sum(phone_records["call_data.call_records"].values()) > 0
    before = full_state(policy, world, phone)
    assert before["log_data.cc_logs"][(DELETION_TENANT, phone)] > 0

    runs: list[tuple[str, str]] = []
    for category in CATEGORIES:
        dag_id = f"retention_{category}"
        if category != "call_data":  # call_data's run for D is the resumed schedule's (test 1)
            runs.append((dag_id, cluster.trigger(dag_id, logical_date=midnight(today, policy.timezone))))
    termination = base_conf(request_type="termination", tenant_id=TERMINATED, reference=f"CLUSTER-T-{TERMINATED}")
    deletion = base_conf(request_type="deletion", tenant_id=DELETION_TENANT, subject_type="phone_number",
                         subject_id=phone, reference=f"CLUSTER-D-{DELETION_TENANT}")
    runs += [(REQUESTS_DAG_ID, cluster.trigger(REQUESTS_DAG_ID, termination)),
             (REQUESTS_DAG_ID, cluster.trigger(REQUESTS_DAG_ID, deletion))]
    for dag_id in {d for d, _ in runs}:  # unpaused after the trigger: the D runs take D's schedule
        cluster.unpause(dag_id)
    for dag_id, run_id in runs:
        assert cluster.wait_finished(dag_id, run_id)["state"] == "success", (dag_id, cluster.states(dag_id, run_id))

    after = full_state(policy, world, phone)
    expected = expected_end(policy, before, today, phone, phone_records)
    for name in expected:
        assert after[name] == expected[name], name
    assert after["log_data.cc_logs"][(DELETION_TENANT, phone)] == 0

    rows = audit(world, [run_id for _, run_id in runs])
    assert rows and all(r["outcome"] == "ok" and not r["dry_run"] for r in rows), rows
    keys = [r["attempt_key"] for r in rows]
    assert len(keys) == len(set(keys)), "one attempt, one settled row, per purge"
    assert deleted_per_target(rows) == removed_per_target(before, after, policy)
    for reference in (termination["reference"], deletion["reference"]):
        request = request_row(world, reference)
        assert request["state"] == "completed" and certificates_of(world, request["request_id"]) == 1, request

    hosts = SHARED.get("hosts", []) + [h for dag_id, run_id in runs for h in purge_hosts(cluster, dag_id, run_id)]
    assert {worker for _, _, worker in hosts} == set(cluster.workers), hosts
    _save("cluster-workers.json", {"mapped_purges": [{"task": t, "map_index": m, "worker": w} for t, m, w in hosts],
                                   "per_worker": dict(Counter(w for _, _, w in hosts))})


def _save(name: str, document: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_text(json.dumps(document, indent=2, default=str))


# --------------------------------------------------------------------------- 3 and 4. faults


def _big_tenant(world: dict[str, Any], tenant: str) -> None:
    """A tenant with ``BIG_ROWS`` call records of last week (the policy keeps them; only a
    termination takes them), so that its termination's MySQL purge lasts a few seconds."""
    import MySQLdb

    db = MySQLdb.connect(host="127.0.0.1", user="root", db=world["ns"].mysql_database, autocommit=True)
    try:
        cur = db.cursor()
        cur.execute("INSERT INTO tenants (tenant_id, name, region, created_at) VALUES (%s, 'fault test', 'sg', %s)",
                    (tenant, datetime(2025, 1, 1)))
        start = datetime.combine(world["today"] - timedelta(days=7), datetime.min.time())
        rows = [(start + timedelta(seconds=30 * i), tenant, f"{tenant}{i:028d}"[:32], "a1", "+6580000000", 60)
                for i in range(BIG_ROWS)]
        cur.executemany("INSERT INTO call_records (started_at, tenant_id, call_id, direction, agent_id, customer_number,"
                        " duration_s) VALUES (%s, %s, %s, 'inbound', %s, %s, %s)", rows)
    finally:
        db.close()


def _call_rows(world: dict[str, Any], tenant: str | None = None) -> int:
    where, params = ("WHERE tenant_id = %s", (tenant,)) if tenant else ("", ())
    return int(root_query(world["ns"].mysql_database, f"SELECT COUNT(*) FROM call_records {where}", params)[0][0])


def _trigger_termination(cluster: Cluster, world: dict[str, Any], tenant: str, reference: str) -> str:
    """Give ``tenant`` its big call history and trigger its call_data termination; the run id."""
    _big_tenant(world, tenant)
    conf = base_conf(request_type="termination", tenant_id=tenant, reference=reference, categories=["call_data"])
    run_id = cluster.trigger(REQUESTS_DAG_ID, conf)
    cluster.unpause(REQUESTS_DAG_ID)
    return run_id


def _terminate_mid_purge(cluster: Cluster, world: dict[str, Any], tenant: str) -> tuple[str, dict[str, Any]]:
    """Trigger a call_data termination of the big tenant; return once its MySQL purge has
    deleted part of the rows (its run id, the purge's task instance)."""
    run_id = _trigger_termination(cluster, world, tenant, f"CLUSTER-FAULT-{tenant}")
    ti = cluster.wait_running(REQUESTS_DAG_ID, run_id, "purge_mysql")
    deadline = time.monotonic() + 120
    while _call_rows(world, tenant) == BIG_ROWS:
        assert time.monotonic() < deadline, cluster.states(REQUESTS_DAG_ID, run_id)
        time.sleep(0.1)
    assert 0 < _call_rows(world, tenant) < BIG_ROWS, "the kill must land mid-purge"
    return run_id, ti


def test_a_worker_killed_mid_purge_is_retried_on_the_other_worker_and_counted_once(
        cluster: Cluster, world: dict[str, Any]) -> None:
    tenant = FAULT_TENANTS["worker_loss"]
    others = _call_rows(world)
    run_id, ti = _terminate_mid_purge(cluster, world, tenant)
    victim = str(ti["hostname"])
    survivor = next(w for w in cluster.workers if w != victim)
    killed_at = time.monotonic()
    cluster.kill(victim)
    left_at_kill = _call_rows(world, tenant)
    try:
        run = cluster.wait_finished(REQUESTS_DAG_ID, run_id)
        recovered_s = time.monotonic() - killed_at
    finally:
        cluster.start(victim)  # two workers again for the tests after this one
    assert run["state"] == "success", cluster.states(REQUESTS_DAG_ID, run_id)
    assert _call_rows(world, tenant) == 0 and _call_rows(world) == others, "the tenant's rows are gone, the rest stay"

    tries = cluster.tries(REQUESTS_DAG_ID, run_id, "purge_mysql")
    assert [(t["try_number"], t["state"], t["hostname"]) for t in tries][-1] == (2, "success", survivor), tries
    assert tries[0]["hostname"] == victim and tries[0]["state"] == "failed", tries
    rows = [r for r in audit(world, [run_id]) if r["target"] == "call_records"]
    assert [r["outcome"] for r in rows] == ["interrupted", "ok"], rows
    killed, rerun = rows
    assert killed["settled_by"] == rerun["id"] and killed["attempt_key"] == rerun["attempt_key"]
    # The killed attempt's count is what was gone when the retry counted (a batch in flight at
    # the kill may still have committed); the two add up to the tenant's rows exactly.
    assert BIG_ROWS - left_at_kill <= killed["deleted"] < BIG_ROWS and rerun["deleted"] > 0, rows
    assert killed["deleted"] + rerun["deleted"] == BIG_ROWS, "nothing counted twice, nothing missed"
    request = request_row(world, f"CLUSTER-FAULT-{tenant}")
    assert request["state"] == "completed"
    _save("cluster-worker-loss.json", {"killed_worker": victim, "retried_on": survivor,
                                       "kill_to_success_seconds": round(recovered_s, 1),
                                       "deleted_by_killed_attempt": killed["deleted"], "deleted_by_retry": rerun["deleted"],
                                       "heartbeat_timeout_seconds": 20})


def test_a_scheduler_killed_mid_run_and_started_again_completes_the_run_with_no_purge_twice(
        cluster: Cluster, world: dict[str, Any]) -> None:
    tenant = FAULT_TENANTS["scheduler_loss"]
    run_id, _ = _terminate_mid_purge(cluster, world, tenant)
    cluster.kill("scheduler")
    time.sleep(3)
    cluster.start("scheduler")
    run = cluster.wait_finished(REQUESTS_DAG_ID, run_id)
    assert run["state"] == "success", cluster.states(REQUESTS_DAG_ID, run_id)
    assert _call_rows(world, tenant) == 0
    rows = audit(world, [run_id])
    assert rows and all(r["outcome"] == "ok" for r in rows), rows
    by_key = Counter(r["attempt_key"] for r in rows)
    assert set(by_key.values()) == {1}, "no purge ran twice"
    assert sum(int(r["deleted"]) for r in rows if r["target"] == "call_records") == BIG_ROWS
    purges = {t["task_id"]: (t["state"], t["try_number"]) for t in cluster.task_instances(REQUESTS_DAG_ID, run_id)
              if t["task_id"].startswith("purge_")}
    assert purges["purge_mysql"] == ("success", 1), purges  # adopted by the new scheduler, never run again
    assert all(state in ("success", "skipped") and tries <= 1 for state, tries in purges.values()), purges


# --------------------------------------------------------------------------- 5. alerts


def test_the_sla_monitors_warning_and_breach_mails_come_from_a_worker(cluster: Cluster, world: dict[str, Any],
                                                                     inbox: Inbox, policy: Policy) -> None:
    from include.retention.crypto import RetentionCrypto
    from include.retention.requests.intake import submit

    tz = policy.timezone
    # The monitor's latest scheduled run (08:00 in the policy zone): triggered with its logical
    # date, so that unpausing the DAG creates no second run beside it.
    now = datetime.now(tz)
    latest = now.replace(hour=8, minute=0, second=0, microsecond=0)
    as_of = (latest if latest <= now else latest - timedelta(days=1)).astimezone(UTC)
    opened = {}
    for days_ago, tenant in ((23, "7712"), (30, "7715")):
        conf = {"request_type": "deletion", "tenant_id": tenant, "subject_type": "phone_number",
                "subject_id": "+6581239999", "reference": f"CLUSTER-SLA-{days_ago}", "requested_by": "dpo@example.test",
                "mode": "execute", "received_at": (as_of - timedelta(days=days_ago)).isoformat()}
        submission = submit(policy, conf, run_after=as_of, run_id="manual__cluster_sla",
                            crypto=RetentionCrypto.from_connection())
        assert submission.outcome == "new"
        opened[days_ago] = submission.request.request_id
    dag_id = "retention_sla_monitor"
    run_id = cluster.trigger(dag_id, logical_date=as_of.isoformat())
    cluster.unpause(dag_id)
    assert cluster.wait_finished(dag_id, run_id)["state"] == "success", cluster.states(dag_id, run_id)
    (w_subject, _), = inbox.about(opened[23])
    (b_subject, _), = inbox.about(opened[30])
    assert "7 day(s) left" in w_subject and "BREACH" in b_subject
    assert all(r == [RECIPIENT] for r in inbox.recipients)
    senders = {str(t["hostname"]) for t in cluster.task_instances(dag_id, run_id) if t["state"] == "success"}
    assert senders and senders <= set(cluster.workers), senders


# --------------------------------------------------------------------------- 6. RabbitMQ


def _rabbitmq_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _rabbitmq_answers(), reason="no RabbitMQ server answers on 127.0.0.1:5672")
def test_on_rabbitmq_as_the_broker_both_workers_consume_and_a_termination_completes(
        cluster: Cluster, world: dict[str, Any]) -> None:
    from kombu import Connection

    from devservers import airflow_ui
    from devservers.cluster import AMQP_URL

    cluster.move_to_broker(AMQP_URL)
    try:
        with Connection(AMQP_URL) as amqp:
            _, _, consumers = amqp.default_channel.queue_declare(queue=cluster.queue, passive=True)
        assert consumers == len(cluster.workers), "both workers consume the cluster's queue on RabbitMQ"
        _terminate_on_rabbitmq(cluster, world)
    finally:
        airflow_ui.down(cluster.home)  # the workers go first, then the queue they consumed
        with Connection(AMQP_URL) as amqp:
            amqp.default_channel.queue_delete(queue=cluster.queue)


def _terminate_on_rabbitmq(cluster: Cluster, world: dict[str, Any]) -> None:
    tenant = FAULT_TENANTS["rabbitmq"]
    others = _call_rows(world)
    run_id = _trigger_termination(cluster, world, tenant, f"CLUSTER-AMQP-{tenant}")
    assert cluster.wait_finished(REQUESTS_DAG_ID, run_id)["state"] == "success", cluster.states(REQUESTS_DAG_ID, run_id)
    assert _call_rows(world, tenant) == 0 and _call_rows(world) == others
    rows = audit(world, [run_id])
    assert rows and all(r["outcome"] == "ok" for r in rows), rows
    assert sum(int(r["deleted"]) for r in rows if r["target"] == "call_records") == BIG_ROWS
    ran = {str(t["hostname"]) for t in cluster.task_instances(REQUESTS_DAG_ID, run_id) if t["state"] == "success"}
    assert ran and ran <= set(cluster.workers), ran
    assert request_row(world, f"CLUSTER-AMQP-{tenant}")["state"] == "completed"
