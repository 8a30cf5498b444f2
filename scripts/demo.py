"""The demo: seed synthetic contact-center data into the local servers, then run the main job
(the five daily retention DAGs as of today, and sample requests where the request DAG exists)
and print what each purged, per category and store.

Run through ``scripts/demo.sh`` (which sets up the environment and starts the servers).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import date, datetime, time as dtime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".run" / "airflow-demo"))

from devservers import connections  # noqa: E402
from devservers.__main__ import ensure_all  # noqa: E402


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def reset_demo_ledger() -> None:
    """The demo starts from a clean ledger: its own database, never a real one."""
    import MySQLdb
    from airflow.sdk import BaseHook

    from include.retention.ledger.db import connect, plain_cursor
    from include.retention.ledger.migrations import migrate

    conn = BaseHook.get_connection("retention_ledger")
    if conn.schema != connections.DEMO.ledger_database:
        raise RuntimeError(f"refusing to reset {conn.schema!r}: not the demo ledger")
    server = MySQLdb.connect(host=conn.host, port=conn.port or 3306, user=conn.login, passwd=conn.password or "")
    try:
        server.cursor().execute(f"DROP DATABASE IF EXISTS `{conn.schema}`")
    finally:
        server.close()
    migrate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="local date of the run (default today)")
    parser.add_argument("--tenants", type=int, default=6)
    parser.add_argument("--calls-per-day", type=int, default=30)
    parser.add_argument("--skip-seed", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    started = time.monotonic()
    endpoints = ensure_all()
    for key, value in connections.airflow_connections(endpoints, connections.DEMO).items():
        os.environ[key] = value
    kinds = {name: str(ep.extra.get("kind", "")) for name, ep in endpoints.items()}
    say("servers: " + ", ".join(f"{n} 127.0.0.1:{ep.port}{' (' + kinds[n] + ')' if kinds[n] else ''}"
                                 for n, ep in endpoints.items()))

    from devdata.seed import seed_all
    from devdata.world import SeedConfig
    from include.retention.policy import load_policy

    policy = load_policy()
    as_of_day = args.as_of or datetime.now(policy.timezone).date()
    config = SeedConfig(tenants=args.tenants, calls_per_day_per_tenant=args.calls_per_day, as_of=as_of_day)
    if not args.skip_seed:
        say(f"seeding {config.months} months of synthetic data for {config.tenants} tenants up to {as_of_day} ...")
        report = seed_all(config, mysql_database=connections.DEMO.mysql_database, reset_mysql=True,
                          cos_bucket=connections.DEMO.bucket, policy=policy)
        for name, count in sorted(report.counts.items()):
            say(f"  seeded {name:<40} {count:>10,}")
        say(f"  seeding took {report.seconds.get('total', 0):.1f}s")

    reset_demo_ledger()
    say("ledger migrated (fresh demo ledger)")

    from devservers.airflow_local import load_dags, prepare_metadata_db, run_dag

    prepare_metadata_db()
    dags = load_dags()
    logical = datetime.combine(as_of_day, dtime.min, tzinfo=policy.timezone)
    quiet = logging.getLogger("airflow")
    quiet.setLevel(logging.ERROR)
    results = {}
    for category in policy.categories:
        dag_id = f"retention_{category}"
        t0 = time.monotonic()
        run = run_dag(dags[dag_id], logical_date=logical)
        results[category] = (str(run.state), time.monotonic() - t0)
        say(f"ran {dag_id} as of {logical.isoformat()}: {run.state} in {time.monotonic() - t0:.1f}s")

    print_summary()
    results.update(run_sample_requests(config, policy, logical))
    failed = [c for c, (state, _) in results.items() if state != "success"]
    say(f"done in {time.monotonic() - started:.0f}s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def run_sample_requests(config, policy, as_of: datetime) -> dict[str, tuple[str, float]]:  # type: ignore[no-untyped-def]
    """One termination and one deletion request through the deletion_requests DAG; print their certificates."""
    from devdata.world import build_world
    from devservers.request_runs import run_request_via_dag_test

    world = build_world(config, policy)
    leaving, staying = world[-1], world[0]
    customer = staying.customers[0]  # personal data: goes in the request, never in the output
    requests = {
        "termination": {"request_type": "termination", "tenant_id": leaving.tenant_id, "subject_type": None,
                        "subject_id": None, "reference": f"DEMO-TERM-{leaving.tenant_id}"},
        "deletion": {"request_type": "deletion", "tenant_id": staying.tenant_id, "subject_type": "phone_number",
                     "subject_id": customer, "reference": f"DEMO-DEL-{staying.tenant_id}-1"},
    }
    out: dict[str, tuple[str, float]] = {}
    for kind, conf in requests.items():
        t0 = time.monotonic()
        conf = {**conf, "categories": [], "received_at": None, "requested_by": "demo", "mode": "execute",
                "resume": False}
        outcome = run_request_via_dag_test(conf, run_after=as_of)
        request_state = (outcome.get("request") or {}).get("state")
        state = "success" if request_state == "completed" else f"request {request_state}"
        say(f"{kind} request {conf['reference']}: run {outcome['dag_run_state']}, request {request_state} "
            f"in {time.monotonic() - t0:.1f}s")
        if outcome.get("markdown"):
            print()
            print(outcome["markdown"])
        out[f"request:{kind}"] = (state, time.monotonic() - t0)
    return out


def print_summary() -> None:
    from include.retention.ledger.db import connect, plain_cursor
    from include.retention.ledger.migrations import migrate

    with connect() as conn:
        cur = plain_cursor(conn)
        cur.execute(
            """SELECT category, store, target, COUNT(*), COALESCE(SUM(planned), 0), SUM(deleted),
                      SUM(outcome <> 'ok'), MAX(verified_remaining)
               FROM purge_audit GROUP BY category, store, target ORDER BY category, store, target"""
        )
        rows = cur.fetchall()
    print()
    print(f"{'category':<16}{'store':<15}{'target':<24}{'purges':>7}{'planned':>10}{'deleted':>10}{'failed':>8}")
    for category, store, target, purges, planned, deleted, failed, _ in rows:
        print(f"{category:<16}{store:<15}{target:<24}{purges:>7}{planned:>10,}{deleted:>10,}{failed:>8}")
    if not rows:
        print("(nothing was due)")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
