"""The package's metrics arrive on a real UDP StatsD listener, through Airflow's own metrics layer.

The daily run goes through the real CLI (``airflow dags test``) in a subprocess whose
``[metrics]`` settings (``AIRFLOW__METRICS__STATSD_*``) point at a socket this module binds on
127.0.0.1: Airflow reads them when it sets its metrics up, at import. What the counters say
must equal what the audit ledger says the run deleted. The SLA monitor runs in-process
(``dag.test()``, as in ``test_sla_monitor.py``) after this process's metrics are set up the
same way a task runner sets them up.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator

import pytest

from tests.e2e.airflow_processes import AirflowProcesses
from tests.e2e.conftest import Inbox, Stores, World, load_dag, task_states
from tests.e2e.test_cli_exit_codes import airflow_cli
from tests.fixtures.statsd import Sample, StatsdListener, airflow_stats_to, statsd_env

pytestmark = [pytest.mark.servers, pytest.mark.slow]

UTC = timezone.utc
DELETED = "airflow.retention.purge.records_deleted"
DURATION = "airflow.retention.purge.duration"


@pytest.fixture(scope="module")
def listener() -> Iterator[StatsdListener]:
    listener = StatsdListener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def airflow(stores: Stores, listener: StatsdListener,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowProcesses]:
    """A private Airflow home whose processes send their metrics to ``listener`` (tags InfluxDB style)."""
    home = AirflowProcesses(tmp_path_factory.mktemp("airflow-metrics"), env=statsd_env(listener.port))
    home.create_store_pools()
    yield home
    home.stop()


def midnight(day: date) -> str:
    from include.retention.policy import load_policy

    return datetime.combine(day, time.min, tzinfo=load_policy().timezone).isoformat()


def last_audit_id(stores: Stores) -> int:
    return int(stores.ledger("SELECT COALESCE(MAX(id), 0) FROM purge_audit")[0][0])


def no_personal_data(listener: StatsdListener, stores: Stores) -> None:
    """No tenant of the session and no phone number of its worlds or requests in any packet."""
    from tests.e2e.test_sla_monitor import PHONE

    packets = "\n".join(listener.received())
    for secret in (*stores.tenants, World.P1, World.P2, World.P3, PHONE, PHONE.lstrip("+")):
        assert secret not in packets, f"{secret} in a metric"


def test_a_daily_run_sends_what_the_audit_ledger_says_it_deleted(airflow: AirflowProcesses, listener: StatsdListener,
                                                                 stores: Stores, world: World) -> None:
    """``retention_call_data`` 200 days on: everything of the world (and of the session) has expired,
    in MySQL and COS; the breaker first refuses it, then an override lets it through."""
    day = world.day + timedelta(days=200)
    listener.clear()
    tripped = airflow_cli(airflow, "dags", "test", "retention_call_data", midnight(day - timedelta(days=1)),
                          "--conf", json.dumps({"max_share": 0.01}))
    assert tripped.returncode != 0
    trips = listener.wait_for(lambda got: any(s.name == "airflow.retention.breaker.trips" for s in got))
    assert [s.tags for s in trips if s.name == "airflow.retention.breaker.trips"] == [{"category": "call_data"}]
    assert [s.value for s in trips if s.name == "airflow.retention.breaker.trips.call_data"] == [1]
    assert not [s for s in trips if s.name.startswith(DELETED)]  # nothing was deleted, nothing counted

    before = last_audit_id(stores)
    run = airflow_cli(airflow, "dags", "test", "retention_call_data", midnight(day), "--conf",
                      json.dumps({"allow_large_purge": True, "override_reason": "metrics e2e: the session's data"}))
    assert run.returncode == 0, run.stderr[-3000:]
    audited = stores.ledger(
        "SELECT store, category, target, COUNT(*), SUM(deleted) FROM purge_audit WHERE id > %s"
        " AND dag_id = 'retention_call_data' AND dry_run = 0 AND outcome = 'ok' GROUP BY store, category, target",
        (before,))
    ledger = {(store, category, target): int(deleted) for store, category, target, _n, deleted in audited}
    purges = {(store, category, target): int(n) for store, category, target, n, _d in audited}
    assert {store for store, _c, _t in ledger} == {"mysql", "cos"}
    assert world.rows("call_records") == 0 and sum(ledger.values()) > 0

    samples = listener.wait_for(lambda got: sum(1 for s in got if s.name == DURATION) == sum(purges.values()))
    counted: Counter[tuple[str, str, str]] = Counter()
    flat: Counter[tuple[str, str, str]] = Counter()
    timings: Counter[tuple[str, str, str]] = Counter()
    for s in samples:
        if s.name == DELETED:
            assert s.tags["path"] == "daily" and s.kind == "c"
            counted[(s.tags["store"], s.tags["category"], s.tags["target"])] += int(s.value)
        elif s.name.startswith(DELETED + "."):
            path, store, category, target = s.name.removeprefix(DELETED + ".").split(".")
            assert path == "daily"
            flat[(store, category, target)] += int(s.value)
        elif s.name == DURATION:
            assert s.kind == "ms" and s.value >= 0
            timings[(s.tags["store"], s.tags["category"], s.tags["target"])] += 1
    assert dict(counted) == ledger
    assert dict(flat) == ledger
    assert dict(timings) == purges  # one duration per audited purge, so at least one per target
    per_store = Counter[str]()
    for (store, _c, _t), n in counted.items():
        per_store[store] += n
    assert per_store == Counter({store: sum(n for (s, _c, _t), n in ledger.items() if s == store)
                                 for store in ("mysql", "cos")})
    no_personal_data(listener, stores)


def test_a_deletion_request_sends_what_the_audit_ledger_says_it_deleted(stores: Stores, world: World) -> None:
    """The request path (``path=request``), in-process: agent a1 of the world, in every store."""
    from tests.e2e.conftest import base_conf

    conf = base_conf(request_type="deletion", tenant_id=world.tenant, subject_type="agent", subject_id="a1",
                     reference=f"MET-{world.tenant}-A1")
    listener = StatsdListener()
    try:
        with airflow_stats_to(listener):
            dag_run = load_dag("deletion_requests", "deletion_requests").test(logical_date=None, run_conf=conf)
            assert str(dag_run.state) == "success", task_states(dag_run)
            audited = stores.ledger(
                "SELECT store, category, target, COUNT(*), SUM(deleted) FROM purge_audit WHERE run_id = %s"
                " AND dry_run = 0 AND outcome = 'ok' GROUP BY store, category, target", (dag_run.run_id,))
            purges = sum(int(n) for *_k, n, _d in audited)
            samples = listener.wait_for(lambda got: sum(1 for s in got if s.name == DURATION) == purges)
        ledger = {(store, category, target): int(deleted) for store, category, target, _n, deleted in audited}
        assert {store for store, _c, _t in ledger} == {"mysql", "redis", "cos", "elasticsearch"}
        counted: Counter[tuple[str, str, str]] = Counter()
        for s in samples:
            if s.name == DELETED:
                assert s.tags["path"] == "request"
                counted[(s.tags["store"], s.tags["category"], s.tags["target"])] += int(s.value)
        assert dict(counted) == ledger
        from include.retention.ledger.requests import find_by_reference

        request = find_by_reference(conf["reference"])
        assert request is not None and request.state == "completed"
        packets = "\n".join(listener.received())
        assert conf["reference"] not in packets and request.request_id not in packets
        for s in samples:
            if s.name.startswith("airflow.retention."):
                assert "a1" not in s.tags.values() and "a1" not in s.name.split("."), s  # the subject
        no_personal_data(listener, stores)
    finally:
        listener.close()


def test_the_sla_monitor_sends_open_requests_days_left_and_its_alerts(stores: Stores, inbox: Inbox) -> None:
    from include.retention.ledger.requests import list_requests
    from include.retention.policy import load_policy
    from include.retention.request_states import OPEN_STATES
    from include.retention.timeutil import days_left
    from tests.e2e.test_sla_monitor import open_request

    tz = load_policy().timezone
    as_of = (datetime.now(tz).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=3)).astimezone(UTC)
    open_request(stores, received_days_ago=24, as_of=as_of)  # 6 days left: a warning
    open_request(stores, received_days_ago=31, as_of=as_of)  # a day overdue: a breach
    open_request(stores, received_days_ago=5, as_of=as_of)  # nothing yet
    # Earlier tests of the session may have left open requests in the ledger: they count too.
    still_open = list_requests(states=OPEN_STATES, mode="execute")
    least = min(days_left(r.due_at, as_of) for r in still_open)
    assert least <= -1

    listener = StatsdListener()
    try:
        with airflow_stats_to(listener):
            dag_run = load_dag("retention_sla_monitor", "retention_sla_monitor").test(logical_date=as_of)
            assert str(dag_run.state) == "success", task_states(dag_run)
            subjects = [str(m["Subject"]) for m in inbox.messages]
            warnings, breaches = sum("warning" in s for s in subjects), sum("BREACH" in s for s in subjects)
            assert warnings >= 1 and breaches >= 1
            samples = listener.wait_for(
                lambda got: len(named(got, "retention.sla.breaches")) == breaches
                and len(named(got, "retention.sla.warnings")) == warnings
                and bool(named(got, "retention.sla.open_requests")))
        assert [s.value for s in named(samples, "retention.sla.open_requests")] == [len(still_open)]
        # a negative gauge goes out as 0, then the value (StatsD would read "-2" alone as a decrement)
        assert [s.value for s in named(samples, "retention.sla.min_days_left")][-1] == least
        assert {s.kind for s in samples if ".sla." in s.name} <= {"g", "c"}
        assert all(s.tags == {} for s in samples if ".sla." in s.name)
        packets = "\n".join(listener.received())
        for request in still_open:
            assert request.request_id not in packets and request.reference not in packets
        no_personal_data(listener, stores)
    finally:
        listener.close()


def named(samples: list[Sample], name: str) -> list[Sample]:
    return [s for s in samples if s.name == f"airflow.{name}"]
