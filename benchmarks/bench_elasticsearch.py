"""Benchmark: ElasticsearchStore against the Elasticsearch stand-in. Not part of the tests.

    .venv/bin/python benchmarks/bench_elasticsearch.py [--tenants 500] [--docs-per-index 20000]
    .venv/bin/python benchmarks/bench_elasticsearch.py --layouts [--tenants 500] [--docs-per-month 4]

Starts a private stand-in (devservers/es_standin_server.py) on a spare port, never the shared
one, and stops it by pid at the end. The figures measure the client path (the official client,
the provider hook, request counts and sizes, the store's own work) plus the stand-in's
in-memory work; they say nothing about how fast a real cluster deletes.

Scenarios
1. termination: drop one tenant's 12 monthly indices among ``--tenants`` x 12 indices;
2. expiry: drop six expired months of every tenant (``--tenants`` x 6 indices) in one
   ExpiredSelection, against a naive baseline of one DELETE per index;
3. deletion request: delete one agent's documents from a year of one tenant's indices
   (12 x ``--docs-per-index`` documents, 5 % of them the agent's), by delete-by-query tasks.

With ``--layouts`` instead: the three layouts side by side in one run, each holding a year of
``--docs-per-month`` documents per tenant per month for ``--tenants`` tenants, 10 of them on
extended retention: per-tenant indices (tenants x 12), shared monthly indices (12), and a data
stream rolled over monthly (12 backing indices). Each layout: a termination of one tenant
(median of 3) and an expiry of six months across every tenant.

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONN_ID = "retention_elasticsearch_bench"
YEAR = [date(2025, m, 1) for m in range(1, 13)]
TENANT_BASE = 9_300_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_standin(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devservers.es_standin_server", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the stand-in did not start")


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) the stand-in process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Measure:
    """Wall time, this process's CPU (client path: store, client, hook) and the stand-in's CPU."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.wall = self.client = self.server = 0.0

    def __enter__(self) -> Measure:
        self._t = (time.perf_counter(), time.process_time(), server_cpu(self.pid))
        return self

    def __exit__(self, *exc: object) -> None:
        wall, client, server = self._t
        self.wall = time.perf_counter() - wall
        self.client = time.process_time() - client
        self.server = server_cpu(self.pid) - server


def create_indices(
    client: Any,
    target: Any,
    tz: Any,
    tenants: list[str],
    months: list[date],
    docs_per_index: int,
    subject_share: float = 0.0,
) -> int:
    """Create the tenants' monthly indices, each with ``docs_per_index`` documents; returns docs loaded."""
    from include.retention.stores.elasticsearch_indices import index_mappings

    loaded = 0
    ops: list[dict[str, Any]] = []
    for tenant in tenants:
        for month in months:
            name = target.index.render(tenant=tenant, month=month)
            created = datetime(month.year, month.month, 1, tzinfo=tz) + timedelta(hours=1)
            client.indices.create(
                index=name,
                settings={"index": {"creation_date": int(created.timestamp() * 1000), "number_of_replicas": 0}},
                mappings=index_mappings(target),
            )
            for i in range(docs_per_index):
                agent = "agent-x" if random.random() < subject_share else f"agent-{i % 200}"
                ops.append({"index": {"_index": name}})
                ops.append(
                    {
                        target.tenant_field: tenant,
                        "agent_id": agent,
                        "phone_number": f"+659{i % 9_000_000:07d}",
                        target.time_field: (created + timedelta(minutes=i)).isoformat(),
                        "message": "agent status changed",
                    }
                )
                if len(ops) >= 10_000:
                    assert not client.bulk(operations=ops)["errors"]
                    loaded += len(ops) // 2
                    ops = []
    if ops:
        assert not client.bulk(operations=ops)["errors"]
        loaded += len(ops) // 2
    client.indices.refresh(index=target.index.prefix() + "*")
    return loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--docs-per-index", type=int, default=20_000)
    parser.add_argument("--small-docs", type=int, default=10, help="documents in each index of scenarios 1-2")
    parser.add_argument("--layouts", action="store_true", help="the three layouts side by side instead")
    parser.add_argument("--docs-per-month", type=int, default=4, help="--layouts: documents per tenant and month")
    args = parser.parse_args()
    random.seed(7)
    if args.layouts:
        return layouts_main(args)

    port = free_port()
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = f"elasticsearch://127.0.0.1:{port}/http"
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".run" / "airflow-bench"))
    proc = start_standin(port)
    rows: list[tuple[str, ...]] = []

    def row(scenario: str, deleted: str, m: Measure, rate: str, requests: str) -> None:
        rows.append((scenario, deleted, f"{m.wall:.3f}", f"{m.client:.3f}", f"{m.server:.3f}", rate, requests))

    try:
        import elasticsearch as es_module
        from elasticsearch import Elasticsearch

        from include.retention.policy import load_policy
        from include.retention.selections import ExpiredSelection, SubjectSelection, TenantSelection
        from include.retention.stores.elasticsearch import ElasticsearchStore

        policy = load_policy()
        target = policy.target("log_data.cc_logs")
        tz = policy.timezone
        client = Elasticsearch(f"http://127.0.0.1:{port}", request_timeout=120)
        store = ElasticsearchStore(elasticsearch_conn_id=CONN_ID, timezone=tz)
        store.client.info()  # import Airflow and read the connection before any timing
        logging.getLogger("elastic_transport").setLevel(logging.WARNING)

        # 1 + 2: many tenants, small indices.
        tenants = [str(TENANT_BASE + i) for i in range(args.tenants)]
        t0 = time.perf_counter()
        docs = create_indices(client, target, tz, tenants, YEAR, args.small_docs)
        setup = time.perf_counter() - t0
        print(f"set up {len(tenants) * 12} indices, {docs} documents in {setup:.1f} s", file=sys.stderr)

        # Five terminations, one at a time, in different places of the name space: the median.
        victims = [tenants[i * len(tenants) // 5 + 1] for i in range(5)]
        runs = []
        for victim in victims:
            with Measure(proc.pid) as m:
                result = store.purge(target, TenantSelection(victim))
            runs.append(m)
            assert result.deleted == 12 * args.small_docs and store.verify(target, TenantSelection(victim)) == 0
        median = Measure(proc.pid)
        median.wall = statistics.median(r.wall for r in runs)
        median.client = statistics.median(r.client for r in runs)
        median.server = statistics.median(r.server for r in runs)
        row(
            f"termination: 1 tenant's 12 indices among {len(tenants) * 12:,} (median of 5)",
            f"{result.details['indices']} indices, {result.deleted} docs",
            median,
            f"{12 / median.wall:,.0f} indices/s",
            f"{result.batches} DELETE request; 3 listings, 1 refresh",
        )

        cutoff = datetime(2025, 7, 1, tzinfo=tz)
        selection = ExpiredSelection(before=cutoff)
        with Measure(proc.pid) as m:
            result = store.purge(target, selection)
        expected = (len(tenants) - len(victims)) * 6
        assert result.details["indices"] == expected and store.verify(target, selection) == 0
        row(
            f"expiry: 6 months of {len(tenants) - len(victims)} tenants",
            f"{expected:,} indices, {result.deleted:,} docs",
            m,
            f"{expected / m.wall:,.0f} indices/s",
            f"{result.batches} DELETE requests of <= 3,000 URL chars",
        )

        # Baseline: the same number of indices, one DELETE each.
        names = [target.index.render(tenant=t, month=m) for t in tenants if t not in victims for m in YEAR[6:]]
        with Measure(proc.pid) as m:
            for name in names:
                client.indices.delete(index=name)
        row(
            "baseline: the other 6 months, one DELETE per index",
            f"{len(names):,} indices",
            m,
            f"{len(names) / m.wall:,.0f} indices/s",
            f"{len(names):,} DELETE requests",
        )

        # 3: one tenant's year, 12 x docs_per_index documents; one agent owns ~5 % of them.
        tenant = str(TENANT_BASE + 99_999)
        t0 = time.perf_counter()
        docs = create_indices(client, target, tz, [tenant], YEAR, args.docs_per_index, subject_share=0.05)
        print(f"loaded {docs:,} documents in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        subject = SubjectSelection(tenant=tenant, subject_type="agent", subject_id="agent-x", subject_hash="b" * 64)
        for batch_size in (1_000, 5_000):
            store_b = ElasticsearchStore(elasticsearch_conn_id=CONN_ID, timezone=tz, batch_size=batch_size)
            planned = store_b.count(target, subject)
            with Measure(proc.pid) as m:
                result = store_b.purge(target, subject)
            assert result.deleted == planned and store_b.verify(target, subject) == 0
            row(
                f"deletion request: 1 agent in 12 x {args.docs_per_index:,} docs (scroll_size {batch_size:,})",
                f"{result.deleted:,} of {docs:,} docs",
                m,
                f"{result.deleted / m.wall:,.0f} docs deleted/s; {docs / m.wall:,.0f} docs scanned/s",
                f"{len(result.details['tasks'])} task(s), {result.batches} batches; "  # type: ignore[arg-type]
                f"the task itself took {result.details['task_seconds']} s",
            )
            # Put the agent's documents back for the next batch size.
            ops: list[dict[str, Any]] = []
            for i in range(planned):
                month = YEAR[i % 12]
                ops += [
                    {"index": {"_index": target.index.render(tenant=tenant, month=month)}},
                    {
                        target.tenant_field: tenant,
                        "agent_id": "agent-x",
                        target.time_field: datetime(month.year, month.month, 2, tzinfo=tz).isoformat(),
                    },
                ]
            for i in range(0, len(ops), 10_000):
                assert not client.bulk(operations=ops[i : i + 10_000])["errors"]
            client.indices.refresh(index=target.index.prefix(tenant=tenant) + "*")
        client.close()
        versions = (
            f"Python {platform.python_version()}, elasticsearch-py {es_module.__versionstr__}, "
            f"stand-in {client_version(port)}"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

    print(
        f"\nMachine: {os.cpu_count()} cores, {platform.platform()}; {versions}; "
        f"load average at the end {os.getloadavg()[0]:.1f}\n"
    )
    print("| scenario | deleted | wall s | client CPU s | stand-in CPU s | rate (wall) | requests |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


def layout_targets(tag: str) -> dict[str, Any]:
    """The log target as each of the three layouts (the packaged policy, log data kept 6 months)."""
    from include.retention.policy import load_policy, parse_policy
    from tests.fixtures.elasticsearch_layouts import layout_doc

    rule = {"months": 6, "extendable": True}
    per_tenant = load_policy().target("log_data.cc_logs")
    out: dict[str, Any] = {"per-tenant indices": per_tenant}
    for kind, label in (("shared", "shared monthly indices"), ("data_stream", "data stream")):
        out[label] = parse_policy(layout_doc(kind, tag, rule)).target("log_data.cc_logs")
    return out


def load_layout(client: Any, target: Any, tz: Any, tenants: list[str], per_month: int) -> int:
    """A year of documents of every tenant in one layout; a data stream rolls over monthly."""
    from include.retention.stores.elasticsearch_indices import index_mappings

    stream = target.layout.data_stream
    if stream:
        client.indices.put_index_template(name=f"{stream}-bench", index_patterns=[stream], data_stream={}, priority=900,
                                          template={"mappings": index_mappings(target)})
    loaded = 0
    for n, month in enumerate(YEAR):
        if stream and n:
            client.indices.rollover(alias=stream)
        ops: list[dict[str, Any]] = []
        for tenant in tenants:
            if target.index is not None:
                name = target.index.render(tenant=tenant, month=month)
                created = datetime(month.year, month.month, 1, 1, tzinfo=tz)  # else refused: created after its cut-off
                client.indices.create(index=name, mappings=index_mappings(target), settings={"index": {
                    "number_of_replicas": 0, "creation_date": int(created.timestamp() * 1000)}})
            elif stream is None:
                name = target.layout.shared_index.render(month)
                if tenant == tenants[0]:
                    client.indices.create(index=name, mappings=index_mappings(target),
                                          settings={"index": {"number_of_replicas": 0}})
            for i in range(per_month):
                at = datetime(month.year, month.month, 1 + i, 12, tzinfo=tz)
                ops.append({"create": {"_index": stream}} if stream else {"index": {"_index": name}})
                ops.append({target.tenant_field: tenant, "agent_id": f"agent-{i}", "@timestamp": at.isoformat()})
            if len(ops) >= 10_000:
                assert not client.bulk(operations=ops)["errors"]
                loaded, ops = loaded + len(ops) // 2, []
        if ops:
            assert not client.bulk(operations=ops)["errors"]
            loaded += len(ops) // 2
    return loaded


def layouts_main(args: argparse.Namespace) -> int:
    """Termination and expiry on each layout, side by side in one run."""
    port = free_port()
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = f"elasticsearch://127.0.0.1:{port}/http"
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".run" / "airflow-bench"))
    proc = start_standin(port)
    rows: list[tuple[str, ...]] = []
    print(f"load average at the start {' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
    try:
        from elasticsearch import Elasticsearch

        from include.retention.policy import load_policy
        from include.retention.selections import ExpiredSelection, TenantSelection
        from include.retention.stores.elasticsearch import ElasticsearchStore

        tz = load_policy().timezone
        client = Elasticsearch(f"http://127.0.0.1:{port}", request_timeout=300)
        store = ElasticsearchStore(elasticsearch_conn_id=CONN_ID, timezone=tz)
        store.client.info()
        logging.getLogger("elastic_transport").setLevel(logging.WARNING)
        tenants = [str(TENANT_BASE + i) for i in range(args.tenants)]
        extended = frozenset(tenants[-10:])
        for label, target in layout_targets(f"b{port}").items():
            t0 = time.perf_counter()
            docs = load_layout(client, target, tz, tenants, args.docs_per_month)
            print(f"{label}: {docs:,} documents in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            runs = []
            for victim in tenants[1:4]:
                with Measure(proc.pid) as m:
                    result = store.purge(target, TenantSelection(victim))
                assert result.deleted == 12 * args.docs_per_month and store.verify(target, TenantSelection(victim)) == 0
                runs.append((m, result))
            m = sorted(runs, key=lambda r: r[0].wall)[1][0]
            result = sorted(runs, key=lambda r: r[0].wall)[1][1]
            rows.append((label, "termination of 1 tenant (median of 3)", f"{result.deleted} docs",
                         f"{m.wall:.3f}", f"{m.client:.3f}", f"{m.server:.3f}", result.method))
            # Six months expire for all tenants but the 10 on extended retention.
            selection = ExpiredSelection(before=datetime(2025, 7, 1, tzinfo=tz), exclude_tenants=extended)
            planned = store.count(target, selection)
            with Measure(proc.pid) as m:
                result = store.purge(target, selection)
            assert result.deleted == planned and store.verify(target, selection) == 0
            dropped, thinned = result.details.get("indices", 0), len(result.details.get("thinned", []))
            rows.append((label, f"expiry of 6 months, {args.tenants - 13} tenants ({len(extended)} extended stay)",
                         f"{result.deleted:,} docs", f"{m.wall:.3f}", f"{m.client:.3f}", f"{m.server:.3f}",
                         f"{result.method}: {dropped} indices dropped, {thinned} thinned"))
        client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"\nMachine: {os.cpu_count()} cores, {platform.platform()}; load average at the end "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| layout | scenario | deleted | wall s | client CPU s | stand-in CPU s | how |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


def client_version(port: int) -> str:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return str(json.loads(resp.read())["version"]["number"])


if __name__ == "__main__":
    raise SystemExit(main())
