"""The daily DAG of log data and the request DAG on the two Elasticsearch layouts where tenants
share indices: shared dated indices and a data stream (``dag.test()``, the stand-in or
``ELASTICSEARCH_URL``'s cluster). One short test per layout.

The policy is the packaged one with ``log_data`` laid out that way and kept 6 calendar months
(extendable), so the daily run expires by age; a termination and an agent's deletion then go
through the request DAG. Tenant ``t`` and ``t + "3"`` share a prefix; a third tenant bought
12 months.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.e2e.conftest import Stores, base_conf, load_dag, task_states
from tests.fixtures.elasticsearch_layouts import SharedLogs, layout_doc, new_tag

pytestmark = [pytest.mark.servers, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(params=["shared", "data_stream"])
def layout(request: pytest.FixtureRequest, stores: Stores, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SharedLogs, Any]]:
    from include.retention.policy import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(layout_doc(request.param, new_tag(), {"months": 6, "extendable": True})))
    monkeypatch.setenv("RETENTION_POLICY_PATH", str(path))  # the DAG files read it when parsed
    policy = load_policy(path)
    logs = SharedLogs(stores.es(), policy.target("log_data.cc_logs"), policy.timezone)  # type: ignore[arg-type]
    yield logs, policy
    logs.cleanup()
    logs.client.close()


def _tenant(stores: Stores, tenant: str) -> str:
    stores.tenants.append(tenant)
    stores.query("INSERT INTO tenants (tenant_id, name, region, created_at) VALUES (%s, %s, 'sg', %s)",
                 (tenant, f"Layout tenant {tenant}", datetime(2025, 1, 1)))
    return tenant


def test_daily_expiry_and_requests_on_a_shared_layout(layout: tuple[SharedLogs, Any], stores: Stores,
                                                      today: Any) -> None:
    from include.retention.ledger.overrides import clear_override, set_override

    logs, policy = layout
    base = stores.new_tenant()
    t, long, ext = _tenant(stores, base + "2"), _tenant(stores, base + "23"), _tenant(stores, base + "4")
    tz = policy.timezone
    as_of = datetime.combine(today, time.min, tzinfo=tz)
    old, recent = as_of - timedelta(days=250), as_of - timedelta(days=3)
    # The old documents first (their own backing index in the stream), then the recent ones.
    logs.write([(t, old, {"agent_id": "a1"}), (long, old, {"agent_id": "a1"}), (ext, old, {})])
    if logs.stream:
        logs.rollover()
    logs.write([(t, recent, {"agent_id": "a1"}), (long, recent, {"agent_id": "a1"}), (long, recent, {"agent_id": "a10"}),
                (ext, recent, {})])
    set_override(ext, "log_data", 12, reason="bought extended storage", set_by="e2e")
    try:
        daily = load_dag("retention_daily", "retention_log_data")
        runs = [daily.test(logical_date=as_of)]
        assert str(runs[0].state) == "success", task_states(runs[0])
        left = sorted((d["tenant_id"], d["@timestamp"] < recent.isoformat()) for d in logs.docs())
        assert left == sorted([(t, False), (long, False), (long, False), (ext, True), (ext, False)])

        requests = load_dag("deletion_requests", "deletion_requests")
        termination = base_conf(request_type="termination", tenant_id=t, reference=f"TKT-{t}-L",
                                categories=["log_data"])
        deletion = base_conf(request_type="deletion", tenant_id=long, subject_type="agent", subject_id="a1",
                             reference=f"TKT-{long}-A1", categories=["log_data"])
        for conf in (termination, deletion):
            runs.append(requests.test(logical_date=None, run_conf=conf))
            assert str(runs[-1].state) == "success", task_states(runs[-1])
        left = sorted((d["tenant_id"], d.get("agent_id")) for d in logs.docs())
        assert left == sorted([(long, "a10"), (ext, None), (ext, None)])  # 77123 is not 7712; a10 is not a1
        # The audit's counts are exact: planned = deleted (expiry 2, termination 1, deletion 1).
        marks = ", ".join(["%s"] * len(runs))
        rows = stores.ledger(f"SELECT selection_kind, planned, deleted, outcome FROM purge_audit "
                             f"WHERE category = 'log_data' AND deleted > 0 AND run_id IN ({marks})",
                             tuple(r.run_id for r in runs))
        assert sorted((k, int(p), int(d), o) for k, p, d, o in rows) == [
            ("expired", 2, 2, "ok"), ("subject", 1, 1, "ok"), ("tenant", 1, 1, "ok")]
    finally:
        clear_override(ext, "log_data")
