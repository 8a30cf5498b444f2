"""``python -m include.retention.coverage``: the coverage check from a shell (the DAG's twin).

    python -m include.retention.coverage check [--stores mysql,redis,cos,elasticsearch] [--record]
        [--all] [--json] [--fail-on-unknown] [--redis-sample-keys N] [--mysql-rows N] ...
    python -m include.retention.coverage show [--all]     # the last recorded run, from the ledger

``check`` lists the stores through the Airflow connections (``retention_coverage_mysql`` or
``retention_mysql``, ``retention_redis``, ``retention_cos``, ``retention_elasticsearch``),
prints the unknown items (``--all``: every item) with their flags and counts, and with
``--record`` keeps the result in the ledger as the DAG does (it sends no e-mail: the DAG
does). Exit status: 0; 1 with ``--fail-on-unknown`` when an item is unknown; 2 on an error.
Counts only: no sampled value is ever printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Sequence, TextIO

from include.retention.coverage.classify import summary
from include.retention.coverage.items import Finding
from include.retention.policy import STORES


def format_finding(f: Finding) -> str:
    c = f.item.counts
    why = f.covered_by or (f"{f.reason} ({f.owner})" if f.reason else "")
    return (f"  {f.status:<8} {f.id}  members {f.item.members}; personal words: {', '.join(f.flags) or '-'}; "
            f"phone-shaped {c.e164}, e-mail-shaped {c.email} of {c.sampled} sampled" + (f"; {why}" if why else ""))


def format_report(findings: Sequence[Finding], *, everything: bool = False) -> list[str]:
    counts = summary(findings)
    lines = [f"coverage: {counts['items']} items: {counts['covered']} covered, {counts['exempt']} exempt, "
             f"{counts['unknown']} unknown ({counts['likely_personal']} likely personal data)"]
    shown = findings if everything else [f for f in findings if f.status == "unknown"]
    order = {"unknown": 0, "exempt": 1, "covered": 2}
    for f in sorted(shown, key=lambda f: (order[f.status], not f.likely_personal, f.id)):
        lines.append(format_finding(f))
    return lines


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    from include.retention.coverage.run import Settings

    parser = argparse.ArgumentParser(prog="python -m include.retention.coverage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="inventory the stores against the policy")
    check.add_argument("--stores", default=",".join(STORES))
    check.add_argument("--record", action="store_true", help="keep the result in the ledger")
    check.add_argument("--all", action="store_true", help="print every item, not only the unknown ones")
    check.add_argument("--json", action="store_true")
    check.add_argument("--fail-on-unknown", action="store_true")
    for name, default in asdict(Settings()).items():
        check.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    show = sub.add_parser("show", help="the last recorded run")
    show.add_argument("--all", action="store_true", help="every item of the run, not only the unknown ones")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        if args.command == "show":
            return _show(args, out)
        return _check(args, out)
    except Exception as exc:  # a clear one-line error; the item names and counts carry no values
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


def _check(args: argparse.Namespace, out: TextIO) -> int:
    from include.retention.coverage.exemptions import load_exemptions
    from include.retention.coverage.run import Settings, classify_results, inventory_store, record
    from include.retention.policy import load_policy
    from include.retention.timeutil import wall_clock

    if args.command is None:
        args = argparse.Namespace(stores=",".join(STORES), record=False, all=False, json=False,
                                  fail_on_unknown=False, **asdict(Settings()))
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if args.record and sorted(stores) != sorted(STORES):
        raise ValueError("--record keeps a whole run: list every store (the dashboard shows the last run's items)")
    policy, exemptions = load_policy(), load_exemptions()
    settings = Settings(**{k: getattr(args, k) for k in asdict(Settings())})
    started = wall_clock()
    results = [inventory_store(store, policy, exemptions, settings) for store in stores]
    findings = classify_results(results, exemptions)
    if args.record:
        record(results, exemptions, run_id=f"cli__{started:%Y%m%dT%H%M%S}", as_of=started, started_at=started)
    if args.json:
        json.dump({"summary": summary(findings), "stores": {r["store"]: r["details"] for r in results},
                   "items": [f.as_json() for f in findings if args.all or f.status == "unknown"]}, out, indent=2)
        out.write("\n")
    else:
        for line in format_report(findings, everything=args.all):
            print(line, file=out)
    return 1 if args.fail_on_unknown and any(f.status == "unknown" for f in findings) else 0


def _show(args: argparse.Namespace, out: TextIO) -> int:
    from include.retention.ledger.coverage import read_latest

    statuses = ("unknown", "exempt", "covered") if args.all else ("unknown",)
    run, rows = read_latest(statuses=statuses)
    if run is None:
        print("no coverage run recorded yet", file=out)
        return 0
    print(f"coverage run {run.run_id} as of {run.as_of.isoformat()}: {run.items} items, {run.covered} covered, "
          f"{run.exempt} exempt, {run.unknown} unknown ({run.likely_personal} likely personal data)", file=out)
    for r in rows:
        print(f"  {r.status:<8} {r.item_id}  personal words: {', '.join(r.flags) or '-'}; phone-shaped "
              f"{r.e164_matches}, e-mail-shaped {r.email_matches} of {r.sampled} sampled; first seen "
              f"{r.first_seen_at:%Y-%m-%d}", file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
