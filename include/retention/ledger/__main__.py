"""Check the ledger's hash chains and signed checkpoints, or take a checkpoint by hand.

    python -m include.retention.ledger verify [--no-checkpoints]
    python -m include.retention.ledger checkpoint [--day YYYY-MM-DD]

``verify`` reads the ledger (``retention_ledger``), the checkpoints under
``ledger-checkpoints/<database>/`` in the ``retention_cos`` bucket and the certificate key
(``retention_keys``), and prints each chain's length and, for a tampered chain, the first
row or entry that was edited, deleted, inserted, reordered or cut off at the end.

Exit codes: 0 the ledger is intact; 1 tampering found (each finding printed); 2 the check
could not run (a connection or key missing, the ledger not migrated).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from typing import Sequence

OK, TAMPERED, CANNOT_CHECK = 0, 1, 2


def verify(*, use_checkpoints: bool = True) -> int:
    from include.retention.crypto import RetentionCrypto
    from include.retention.ledger import checkpoints as cp
    from include.retention.ledger.db import ledger_database
    from include.retention.ledger.verify import verify_ledger

    started = time.perf_counter()
    try:
        loaded: list = []
        unsigned: list = []
        if use_checkpoints:
            client, bucket = cp.cos()
            loaded, unsigned = cp.load_all(client, bucket, ledger_database(), RetentionCrypto.from_connection())
        report = verify_ledger(checkpoints=loaded, unsigned=unsigned)
    except Exception as exc:  # noqa: BLE001 - any failure to read is "could not check", said plainly
        print(f"ledger verify: could not check: {type(exc).__name__}: {exc}", file=sys.stderr)
        return CANNOT_CHECK
    for state in report.chains:
        print(f"chain {state.chain}: {state.length} entries (adopted at start {state.adopted}, "
              f"started {state.started_at or '?'})")
    if use_checkpoints:
        print(f"checkpoints checked: {report.checkpoints}"
              + ("" if report.checkpoints else " (none: rows cut off at the end cannot be seen)"))
    else:
        print("checkpoints not checked (--no-checkpoints): rows cut off at the end cannot be seen")
    elapsed = time.perf_counter() - started
    if report.ok:
        print(f"OK: every chain intact ({elapsed:.1f} s)")
        return OK
    for chain, finding in report.first().items():
        print(f"TAMPERED: first finding of chain {chain}: {finding}", file=sys.stderr)
    for finding in report.findings:
        print(f"  {finding}", file=sys.stderr)
    print(f"TAMPERED: {len(report.findings)} finding(s) in {len(report.first())} chain(s) ({elapsed:.1f} s)",
          file=sys.stderr)
    return TAMPERED


def checkpoint(day: date) -> int:
    from include.retention.crypto import RetentionCrypto
    from include.retention.ledger import checkpoints as cp
    from include.retention.timeutil import wall_clock

    stored = cp.take(day=day, taken_at=wall_clock(), crypto=RetentionCrypto.from_connection())
    print(f"{stored.checkpoint['checkpoint_id']}: {stored.key} (object lock: {stored.object_lock})")
    return OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.retention.ledger", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="check the chains, the certificates' positions and the checkpoints")
    check.add_argument("--no-checkpoints", action="store_true", help="check the ledger alone (no COS)")
    take = sub.add_parser("checkpoint", help="sign the chains' heads into COS now")
    take.add_argument("--day", type=date.fromisoformat, default=None, help="the day it stands for (default: today UTC)")
    args = parser.parse_args(argv)
    if args.command == "verify":
        return verify(use_checkpoints=not args.no_checkpoints)
    from include.retention.timeutil import wall_clock

    return checkpoint(args.day or wall_clock().date())


if __name__ == "__main__":
    sys.exit(main())
