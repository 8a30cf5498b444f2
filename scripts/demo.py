"""The demo: seed synthetic contact-center data into the local servers, then run the main job
(the five daily retention DAGs as of today, a termination and a deletion request) and print a
short summary: per run and store, what was deleted and how long it took (from the audit
ledger), then the certificates' summary lines. Airflow's task logs and the package's INFO logs
go to ``.run/demo-<time>.log`` (``.run/demo.log`` is the latest). Exit status 0 only when every
run succeeded.

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
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".run" / "airflow-demo"))

from devservers import connections, mysql_users  # noqa: E402
from devservers.servers import ensure_all  # noqa: E402
from devservers.demo_report import (  # noqa: E402
    RunResult,
    certificate_summary,
    failed_runs,
    format_summary,
    output_to_file,
    store_totals,
)


#: The terminal while the demo's other output goes to its log file (see ``main``).
_console: TextIO | None = None


def say(message: str) -> None:
    """A line for the person running the demo: on the terminal, and in the log file."""
    line = f"[demo] {message}"
    if _console is not None:
        print(line, file=_console, flush=True)
    print(line, flush=True)


def reset_demo_ledger() -> None:
    """The demo starts from a clean ledger: its own database, never a real one."""
    import MySQLdb
    from airflow.sdk import BaseHook

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


def policy_without_request_approvals() -> bool:
    """Point ``RETENTION_POLICY_PATH`` at a copy of the policy in which no request waits for a
    person's approval: the demo runs its requests with ``dag.test()``, where nobody could
    answer. The Airflow UI of ``scripts/airflow.sh`` keeps the real policy (and its approvals).

    :return: whether the policy had approvals to switch off.
    """
    import dataclasses

    import yaml

    from include.retention.policy import POLICY_PATH_ENV, Policy, policy_path

    if "request_approval" not in {f.name for f in dataclasses.fields(Policy)}:
        return False
    doc = yaml.safe_load(policy_path().read_text())
    doc["request_approval"] = {**(doc.get("request_approval") or {}), "required_for": []}
    copy = ROOT / ".run" / "demo-policy.yaml"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text("# Written by scripts/demo.py: the policy without request approvals.\n"
                    + yaml.safe_dump(doc, sort_keys=False))
    os.environ[POLICY_PATH_ENV] = str(copy)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="local date of the run (default today)")
    parser.add_argument("--tenants", type=int, default=6)
    parser.add_argument("--calls-per-day", type=int, default=30)
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--log", type=Path, default=None, help="where the task logs go (default .run/demo-<time>.log)")
    args = parser.parse_args(argv)
    log_file = args.log or ROOT / ".run" / f"demo-{datetime.now().strftime('%Y%m%dT%H%M%S')}.log"
    latest = ROOT / ".run" / "demo.log"
    say(f"task logs and INFO logs of this run: {_shown(log_file)} (also {_shown(latest)})")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.touch()
    if args.log is None:
        latest.unlink(missing_ok=True)
        latest.symlink_to(log_file.name)
    with output_to_file(log_file) as console:
        global _console
        _console = console
        logging.basicConfig(level=logging.INFO)
        try:
            status = run_demo(args)
        except Exception:
            logging.getLogger("demo").exception("the demo stopped")
            say(f"FAILED: the demo stopped with an error; its traceback is at the end of {_shown(log_file)}")
            status = 2
        finally:
            _console = None
    return status


def run_demo(args: argparse.Namespace) -> int:
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

    if policy_without_request_approvals():
        say("requests run without their approval step (nobody answers one in a batch run); "
            "./scripts/airflow.sh shows it")
    policy = load_policy()
    as_of_day = args.as_of or datetime.now(policy.timezone).date()
    config = SeedConfig(tenants=args.tenants, calls_per_day_per_tenant=args.calls_per_day, as_of=as_of_day)
    mariadb = endpoints["mariadb"]
    if not args.skip_seed:
        say(f"seeding {config.months} months of synthetic data for {config.tenants} tenants up to {as_of_day} ...")
        # Root creates the schema and its rows (a DBA's job); its connection is gone before any DAG runs.
        root = connections.root_mysql_connection(mariadb, connections.DEMO.mysql_database)
        os.environ.update(root)
        try:
            report = seed_all(config, mysql_conn_id=connections.ROOT_MYSQL_CONN_ID,
                              mysql_database=connections.DEMO.mysql_database, reset_mysql=True,
                              cos_bucket=connections.DEMO.bucket, policy=policy)
        finally:
            for key in root:
                os.environ.pop(key, None)
        say(f"  seeded {sum(report.counts.values()):,} records in {len(report.counts)} tables, indices and "
            f"prefixes in {report.seconds.get('total', 0):.0f}s")

    account = mysql_users.ensure_store_user(mariadb, connections.DEMO.mysql_database,
                                            connections.DEMO.ledger_database)
    say(f"MySQL: the DAGs connect as {account.login}@{account.host}, with the grants "
        "python -m include.retention.cli.grants prints (not as root)")
    reset_demo_ledger()
    say("ledger migrated (fresh demo ledger)")

    from devservers.airflow_local import load_dags, prepare_metadata_db, run_dag

    prepare_metadata_db()
    dags = load_dags()
    logical = datetime.combine(as_of_day, dtime.min, tzinfo=policy.timezone)
    say(f"running the {len(policy.categories)} daily DAGs as of {logical.isoformat()}, then two requests ...")
    results: list[RunResult] = []
    for category in policy.categories:
        dag_id = f"retention_{category}"
        t0 = time.monotonic()
        try:
            run = run_dag(dags[dag_id], logical_date=logical)
        except Exception as exc:  # the summary names the DAG; the traceback goes to the log
            logging.getLogger("demo").exception("%s raised", dag_id)
            results.append(RunResult(dag_id, dag_id, "", "error", time.monotonic() - t0, False,
                                     note=f"{type(exc).__name__}; traceback in the log"))
            say(f"  {dag_id}: error ({type(exc).__name__})")
            continue
        state = str(run.state)
        results.append(RunResult(dag_id, dag_id, run.run_id, state, time.monotonic() - t0, state == "success"))
        say(f"  {dag_id}: {state}")
    results += run_sample_requests(config, policy, logical)
    coverage_ok, coverage_lines = run_coverage_check(policy, logical)

    from include.retention.certificates.issue import load
    from include.retention.crypto import RetentionCrypto

    crypto = RetentionCrypto.from_connection("retention_keys")
    certificates = []
    for result in results:
        stored = load(result.request_id) if result.request_id else None
        if stored is not None:
            certificates.append(certificate_summary(stored.document, crypto))
    out = _console or sys.stdout
    print(file=out)
    for line in format_summary(results, store_totals([r.run_id for r in results]), certificates):
        print(line, file=out)
    print(file=out)
    for line in coverage_lines:
        print(line, file=out)
    print(file=out)
    failed = failed_runs(results) + ([] if coverage_ok else ["coverage check"])
    if failed:
        say(f"FAILED: {', '.join(failed)} (done in {time.monotonic() - started:.0f}s); "
            "the log above names the failing task")
        return 1
    say(f"all {len(results)} runs succeeded in {time.monotonic() - started:.0f}s. Full certificates: "
        "python -m include.retention.cli.verify_certificate show <request id>")
    say("next: ./scripts/airflow.sh (or make ui) opens these DAGs, their runs and the retention dashboard "
        "in a local Airflow; ./scripts/stop.sh stops it")
    return 0


def run_sample_requests(config, policy, as_of: datetime) -> list[RunResult]:  # type: ignore[no-untyped-def]
    """One termination and one deletion request through the deletion_requests DAG."""
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
    out: list[RunResult] = []
    for kind, conf in requests.items():
        t0 = time.monotonic()
        conf = {**conf, "categories": [], "received_at": None, "requested_by": "demo", "mode": "execute",
                "resume": False}
        label = f"deletion_requests: {kind} {conf['reference']}"
        try:
            outcome = run_request_via_dag_test(conf, run_after=as_of)
        except Exception as exc:  # the summary names the DAG; the traceback goes to the log
            logging.getLogger("demo").exception("%s raised", label)
            out.append(RunResult(label, "deletion_requests", "", "error", time.monotonic() - t0, False,
                                 note=f"{type(exc).__name__}; traceback in the log"))
            say(f"  {label}: error ({type(exc).__name__})")
            continue
        request = outcome.get("request") or {}
        request_state = request.get("state")
        ok = outcome["dag_run_state"] == "success" and request_state == "completed"
        out.append(RunResult(label, "deletion_requests", outcome["run_id"], outcome["dag_run_state"],
                             time.monotonic() - t0, ok, request.get("request_id"),
                             "" if ok else f"request {request_state}"))
        say(f"  {label}: run {outcome['dag_run_state']}, request {request_state}")
    return out


def run_coverage_check(policy, as_of: datetime) -> tuple[bool, list[str]]:  # type: ignore[no-untyped-def]
    """The retention_coverage DAG's work over the demo's stores, recorded in the ledger (without its
    e-mail: the demo has no SMTP server). The seed holds crm_callbacks, a table no policy target
    names, with phone numbers under a column whose name says nothing: the check must catch it."""
    from include.retention.coverage.__main__ import format_finding
    from include.retention.coverage.classify import summary
    from include.retention.coverage.exemptions import load_exemptions
    from include.retention.coverage.run import Settings, classify_results, inventory_store, record
    from include.retention.policy import STORES
    from include.retention.timeutil import wall_clock

    t0, started = time.monotonic(), wall_clock()
    try:
        exemptions = load_exemptions()
        results = [inventory_store(store, policy, exemptions, Settings()) for store in STORES]
        record(results, exemptions, run_id=f"demo__{started:%Y%m%dT%H%M%S}", as_of=as_of, started_at=started)
        findings = classify_results(results, exemptions)
    except Exception as exc:  # the summary says so; the traceback goes to the log
        logging.getLogger("demo").exception("the coverage check raised")
        return False, [f"coverage check: error ({type(exc).__name__}; traceback in the log)"]
    counts = summary(findings)
    unknown = sorted((f for f in findings if f.status == "unknown"), key=lambda f: (not f.likely_personal, f.id))
    lines = [f"coverage check ({time.monotonic() - t0:.1f}s; python -m include.retention.coverage show): "
             f"{counts['items']} items in the four stores, {counts['covered']} covered by the policy, "
             f"{counts['exempt']} exempt, {counts['unknown']} unknown, {counts['likely_personal']} of them likely "
             "personal data (counts only; no value is kept):"]
    lines += [format_finding(f) for f in unknown[:5]] + ([f"  ... and {len(unknown) - 5} more"] if len(unknown) > 5 else [])
    caught = any(f.id == "mysql:table:crm_callbacks" and f.likely_personal for f in unknown)
    lines.append("  caught: crm_callbacks, the table the demo seeds outside the policy, by its phone-shaped values"
                 if caught else "  NOT caught: crm_callbacks, the table the demo seeds outside the policy")
    return caught, lines


def _shown(path: Path) -> str:
    """The path as a person in the project directory would type it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))  # not resolved: .run/demo.log is a link
    except ValueError:
        return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
