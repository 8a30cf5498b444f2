"""The CeleryExecutor side of ``benchmarks/bench_daily_dags.py`` (``--executor celery|both``).

Over one loaded world, :func:`running` starts the local cluster of ``devservers/cluster.py``
(PostgreSQL metadata DB of its own, api-server, scheduler, dag-processor, triggerer, two Celery
workers ``worker-1`` and ``worker-2``, the store pools as ``include/retention/pools.py`` creates
them) with the benchmark's ``AIRFLOW_CONN_*`` and a broker on a redis-server of its own, so that
neither the retention data's Redis nor another cluster's queue is shared. The settings are the
cluster's production-like defaults, with one change: ``AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL``
1 s (default 5 s), so that a task's supervisor notices a finished task sooner.

:func:`serial` triggers the daily DAGs one after another through the REST API, each waited for;
:func:`at_once` triggers them all and waits for every run. A run is triggered with its
logical date and then unpaused, the way the e2e tests do it: the logical date must be the latest
scheduled one (midnight today in the policy zone), or unpausing would make the scheduler add its
own run beside it (``catchup=False``). Each DAG is paused again once its run ended.

Per run: wall time from the trigger to the run's ``end_date``, the task instances (each map
index once), the time each spent queued (``start_date - queued_when``), which worker ran it
(``hostname``) and how many needed a second try; the load average sampled while it ran.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Iterator

#: The one setting changed from the cluster's defaults (the default is 5 s).
SETTINGS = {"AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1"}
BROKER_DB = 15  # of the broker's own redis-server
RUN_TIMEOUT_S = 3 * 3600.0
POLL_S = 2.0  # the REST API shares the two cores; the wall time comes from end_date, not the poll
PAGE = 100  # the API's maximum_page_limit: a longer limit is cut to it


def log(message: str) -> None:
    import sys

    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class Client:
    """The cluster's REST API as an operator uses it."""

    def __init__(self, instance: Any) -> None:
        from devservers import airflow_ui

        self.instance = instance
        self.token = airflow_ui.admin_token(instance)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        from devservers import airflow_ui

        status, answer = airflow_ui.rest(self.instance, method, path, body, self.token)
        if status == 401:  # the token expired during a long run: log in again
            self.token = airflow_ui.admin_token(self.instance)
            status, answer = airflow_ui.rest(self.instance, method, path, body, self.token)
        if status not in (200, 201):
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer

    def wait_parsed(self, dag_id: str, timeout: float = 300.0) -> None:
        from devservers import airflow_ui

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if airflow_ui.rest(self.instance, "GET", f"/api/v2/dags/{dag_id}", token=self.token)[0] == 200:
                return
            time.sleep(1)
        raise RuntimeError(f"{dag_id} was not parsed within {timeout:.0f} s")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, logical_date: datetime, conf: dict[str, Any]) -> str:
        body = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                         {"logical_date": logical_date.isoformat(), "conf": conf})
        return str(body["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, one per map index (paged)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
        out: list[dict[str, Any]] = []
        while True:
            body = self.call("GET", f"{path}?limit={PAGE}&offset={len(out)}")
            out += body["task_instances"]
            if not body["task_instances"] or len(out) >= body["total_entries"]:
                return out


@contextmanager
def running(home: Path, tag: str, connections: dict[str, str]) -> Iterator[Client]:
    """A cluster in ``home`` over the stores ``connections`` (``AIRFLOW_CONN_*``) wire; stopped
    on exit, its metadata database dropped and its broker stopped."""
    from devservers import airflow_ui, cluster, postgres
    from devservers.procs import spare_port
    from tests.fixtures.redis import PrivateRedis

    database = f"retention_airflow_bench_{tag}"
    broker = PrivateRedis(home.parent / "broker", persistent=False).start()
    previous = os.environ.get(cluster.BROKER_URL_ENV)
    os.environ[cluster.BROKER_URL_ENV] = f"redis://127.0.0.1:{broker.port}/{BROKER_DB}"
    try:
        # namespace "demo": its connections are all replaced by ``connections``; only the
        # demo's MySQL account on the shared server is ensured (never the tests' namespace).
        instance = cluster.up(home, namespace="demo", port=spare_port(), database=database, fresh=True,
                              extra={**connections, **SETTINGS}, unpause=False)
        yield Client(instance)
    finally:
        airflow_ui.down(home)
        try:
            postgres.drop_database(postgres.ensure(), database)
        finally:
            broker.stop()
            if previous is None:
                os.environ.pop(cluster.BROKER_URL_ENV, None)
            else:
                os.environ[cluster.BROKER_URL_ENV] = previous


# --------------------------------------------------------------------------- runs


@dataclass
class RunFigures:
    """One DAG run on the cluster, as measured."""

    dag_id: str
    run_id: str
    triggered: datetime
    ended: datetime
    tis: list[dict[str, Any]]
    load: list[float] = field(default_factory=list)  # 1-minute load average, sampled while it ran

    @property
    def wall_s(self) -> float:
        return (self.ended - self.triggered).total_seconds()

    def queued_s(self) -> list[float]:
        """Per task instance that started: start_date - queued_when."""
        out = []
        for ti in self.tis:
            queued, started = _instant(ti.get("queued_when")), _instant(ti.get("start_date"))
            if queued and started:
                out.append(max(0.0, (started - queued).total_seconds()))
        return out

    def per_worker(self) -> Counter[str]:
        return Counter(str(ti["hostname"]) for ti in self.tis if ti.get("hostname"))

    def mapped(self) -> int:
        return sum(1 for ti in self.tis if int(ti["map_index"]) >= 0)

    def retried(self) -> int:
        return sum(1 for ti in self.tis if int(ti.get("try_number") or 0) > 1)


def _wait(client: Client, runs: dict[str, str], load: list[float], timeout: float) -> dict[str, dict[str, Any]]:
    """Until every run (dag_id -> run_id) ended; their last REST documents."""
    deadline = time.monotonic() + timeout
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(runs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not finished within {timeout:.0f} s: {sorted(set(runs) - set(done))}")
        for dag_id, run_id in runs.items():
            if dag_id not in done:
                run = client.run(dag_id, run_id)
                if run["state"] in ("success", "failed"):
                    done[dag_id] = run
                    client.set_paused(dag_id, True)  # no scheduled run of its own after this one
                    log(f"{dag_id}: {run['state']}")
        load.append(os.getloadavg()[0])
        time.sleep(POLL_S)
    return done


def _figures(client: Client, dag_id: str, run_id: str, run: dict[str, Any], triggered: datetime,
             load: list[float]) -> RunFigures:
    tis = client.task_instances(dag_id, run_id)
    if run["state"] != "success":
        states = {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in tis}
        raise RuntimeError(f"{dag_id} {run_id} ended {run['state']}: {states}")
    ended = _instant(run.get("end_date"))
    assert ended is not None, run
    return RunFigures(dag_id, run_id, triggered, ended, tis, load)


def serial(client: Client, dag_ids: list[str], logical_date: datetime, conf: dict[str, Any],
           timeout: float = RUN_TIMEOUT_S) -> list[RunFigures]:
    """Each DAG triggered once its predecessor's run ended."""
    out = []
    for dag_id in dag_ids:
        client.wait_parsed(dag_id)
        load = [os.getloadavg()[0]]
        triggered = datetime.now(UTC)
        run_id = client.trigger(dag_id, logical_date, conf)
        client.set_paused(dag_id, False)  # after the trigger: this run takes the schedule's place
        run = _wait(client, {dag_id: run_id}, load, timeout)[dag_id]
        out.append(_figures(client, dag_id, run_id, run, triggered, load))
    return out


def at_once(client: Client, dag_ids: list[str], logical_date: datetime, conf: dict[str, Any],
            timeout: float = RUN_TIMEOUT_S) -> list[RunFigures]:
    """All DAGs triggered together, then unpaused together; every run waited for."""
    for dag_id in dag_ids:
        client.wait_parsed(dag_id)
    load = [os.getloadavg()[0]]
    triggered, runs = {}, {}
    for dag_id in dag_ids:
        triggered[dag_id] = datetime.now(UTC)
        runs[dag_id] = client.trigger(dag_id, logical_date, conf)
    for dag_id in dag_ids:
        client.set_paused(dag_id, False)
    done = _wait(client, runs, load, timeout)
    return [_figures(client, d, runs[d], done[d], triggered[d], load) for d in dag_ids]


# --------------------------------------------------------------------------- report


def _queued(runs: list[RunFigures]) -> str:
    queued = [q for r in runs for q in r.queued_s()]
    return f"{sum(queued):.1f} / {max(queued, default=0.0):.1f}"


def _workers(runs: list[RunFigures], workers: tuple[str, ...]) -> str:
    counts: Counter[str] = Counter()
    for r in runs:
        counts += r.per_worker()
    names = sorted(set(workers) | set(counts))
    return " / ".join(f"{counts.get(w, 0)}" for w in names)


def _load(runs: list[RunFigures]) -> str:
    samples = [x for r in runs for x in r.load]
    return f"{min(samples):.1f}–{max(samples):.1f}" if samples else "?"


def report(serial_runs: list[RunFigures], together: list[RunFigures], dagtest_s: dict[str, float] | None,
           workers: tuple[str, ...] = ("worker-1", "worker-2")) -> None:
    """The side-by-side table (markdown on stdout)."""
    head = "| DAG | " + ("`dag.test()` wall (s) | " if dagtest_s is not None else "")
    print("\n## CeleryExecutor on PostgreSQL, two workers\n")
    print(head + "Celery wall, trigger → end (s) | Task instances (mapped) | Queued: sum / max (s) | "
          f"Task instances per worker ({' / '.join(workers)}) | Second tries | Load avg (min–max) |")
    print("|---|" + ("---:|" if dagtest_s is not None else "") + "---:|---:|---:|---|---:|---|")

    def row(name: str, wall: float, runs: list[RunFigures], serial_s: str) -> None:
        tis = sum(len(r.tis) for r in runs)
        mapped = sum(r.mapped() for r in runs)
        retried = sum(r.retried() for r in runs)
        print(f"| {name} | " + (f"{serial_s} | " if dagtest_s is not None else "")
              + f"{wall:.1f} | {tis} ({mapped}) | {_queued(runs)} | {_workers(runs, workers)} | {retried} | "
              f"{_load(runs)} |")

    for r in serial_runs:
        row(r.dag_id, r.wall_s, [r], f"{dagtest_s[r.dag_id]:.1f}" if dagtest_s else "")
    if together:
        first = min(r.triggered for r in together)
        last = max(r.ended for r in together)
        total = sum(dagtest_s.values()) if dagtest_s else 0.0
        row("all five triggered at once (first trigger → last end)", (last - first).total_seconds(), together,
            f"{total:.1f} (sum, one after another)")
        print("\nIn the run of all five at once, each DAG's own wall time (its trigger → its end):\n")
        print("| DAG | wall (s) | queued: sum / max (s) | per worker |\n|---|---:|---:|---|")
        for r in together:
            print(f"| {r.dag_id} | {r.wall_s:.1f} | {_queued([r])} | {_workers([r], workers)} |")
