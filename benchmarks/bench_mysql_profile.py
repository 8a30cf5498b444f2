"""Helpers of benchmarks/bench_mysql.py: a per-phase profile of a store purge, and the store
as it was before issue 14 (loaded from git) to run beside today's."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The store's purge loop before chunks read their bounds in one statement (issue 14), run
#: side by side as ``keyset-before``: its mysql.py from git, over today's mysql_sql helpers.
BEFORE = "1ce13d8a973dd0c5bf93f8a1becb38c9bde23476"


def store_before() -> type:
    """``MySqlStore`` as it was at :data:`BEFORE`, loaded from ``git show`` into a module of its own."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE}:include/retention/stores/mysql.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="bench-mysql-before-")) / "mysql_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("mysql_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mysql_before"] = module
    spec.loader.exec_module(module)
    shutil.rmtree(path.parent, ignore_errors=True)
    return module.MySqlStore  # type: ignore[no-any-return]


def phase_of(statement: str) -> str:
    """The phase of a purge a statement belongs to, for the profile."""
    text = statement.lstrip()
    if "information_schema" in text:
        return "metadata (information_schema)"
    if text.startswith("DELETE"):
        if "ORDER BY" in text:
            return "DELETE (chunk between walk positions)"
        return "DELETE (key list)" if " IN (%s" in text else "DELETE (key range or window)"
    if "COUNT(" in text:
        return "COUNT (planned, for the audit)"
    if "UNION ALL" in text:
        return "SELECT bounds of a chunk (index-only, <= 3 rows)"
    if "FORCE INDEX" in text:
        return "SELECT keys of a batch (keyset walk)"
    return "other"


def profile_store(store: Any) -> dict[str, list[float]]:
    """Wrap the store's statements to total their time per phase: ``{phase: [statements, seconds]}``.

    Each DELETE runs inside an explicit ``BEGIN`` / ``COMMIT`` (one round trip more than
    autocommit each), so that the commit's share is visible on its own and a ``BEGIN``
    shows what a bare round trip costs.
    """
    totals: dict[str, list[float]] = {}

    def add(phase: str, seconds: float) -> None:
        entry = totals.setdefault(phase, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    query, execute = store._query, store._execute

    def timed_query(statement: str, params: Any = ()) -> Any:
        t = time.perf_counter()
        try:
            return query(statement, params)
        finally:
            add(phase_of(statement), time.perf_counter() - t)

    def timed_execute(statement: str, params: Any = ()) -> int:
        if not statement.lstrip().startswith("DELETE"):
            t = time.perf_counter()
            try:
                return execute(statement, params)
            finally:
                add(phase_of(statement), time.perf_counter() - t)
        cur = store._cursor()
        t0 = time.perf_counter()
        cur.execute("BEGIN")
        t1 = time.perf_counter()
        n = execute(statement, params)
        t2 = time.perf_counter()
        cur.execute("COMMIT")
        t3 = time.perf_counter()
        cur.close()
        add("round trip (BEGIN)", t1 - t0)
        add(phase_of(statement), t2 - t1)
        add("COMMIT", t3 - t2)
        return n

    store._query, store._execute = timed_query, timed_execute
    return totals


def report_profile(title: str, profile: dict[str, list[float]], total: float, rest_label: str) -> None:
    print(f"| {title} | Statements | Seconds | Share |\n|---|---:|---:|---:|")
    for phase, (n, seconds) in sorted(profile.items(), key=lambda kv: -kv[1][1]):
        print(f"| {phase} | {int(n):,} | {seconds:.3f} | {seconds / total:.0%} |")
    rest = total - sum(seconds for _, seconds in profile.values())
    if rest > 0:
        print(f"| {rest_label} | | {rest:.3f} | {rest / total:.0%} |")
    print(f"| **total** | | **{total:.3f}** | |\n")
