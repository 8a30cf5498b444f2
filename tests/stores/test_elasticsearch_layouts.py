"""The Elasticsearch store on the two layouts where tenants share indices, and aliases, against a
real server (the stand-in, or ELASTICSEARCH_URL).

- Shared dated indices (``cc-shared-<tag>-{month}``, the tenant in ``tenant_id``).
- A data stream (``cc-stream-<tag>``) with backing indices rolled over by hand.
- Per-tenant indices behind an alias: only concrete names reach ``DELETE /{index}``.

Tenants ``…7712`` and ``…77123`` share a prefix on purpose: a term filter is exact.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest

from include.retention.policy import ElasticsearchTarget, Policy
from include.retention.selections import ExpiredSelection, SubjectSelection, TenantSelection
from include.retention.stores.elasticsearch import ElasticsearchStore
from tests.fixtures.elasticsearch import LogIndices, StandIn
from tests.fixtures.elasticsearch_layouts import SharedLogs, layout_policy, new_tag

pytestmark = [pytest.mark.servers, pytest.mark.timeout(60)]

SGT = ZoneInfo("Asia/Singapore")
JAN, FEB, MAR = (datetime(2025, m, 10, 12, tzinfo=SGT) for m in (1, 2, 3))
CUT = datetime(2025, 3, 1, tzinfo=SGT)  # January and February lie wholly before it


@pytest.fixture
def ids(tenant_base: str) -> dict[str, str]:
    """A tenant, its prefix-sharing neighbour, one on extended retention, one held."""
    return {"t": f"{tenant_base}7712", "long": f"{tenant_base}77123", "ext": f"{tenant_base}7713",
            "held": f"{tenant_base}7714"}


def _target(kind: str) -> ElasticsearchTarget:
    target = layout_policy(kind, new_tag(), {"months": 6, "extendable": True}).target("log_data.cc_logs")
    assert isinstance(target, ElasticsearchTarget)
    return target


@pytest.fixture(params=["shared", "data_stream"])
def logs(request: pytest.FixtureRequest, es_client: Any) -> Iterator[SharedLogs]:
    helper = SharedLogs(es_client, _target(request.param), SGT)
    yield helper
    helper.cleanup()


def _subject(tenant: str, agent: str, held: frozenset[tuple[str, str, str]] = frozenset()) -> SubjectSelection:
    return SubjectSelection(tenant, "agent", agent, "h" * 64, held)


def _tenants_of(logs: SharedLogs) -> list[str]:
    return sorted(d["tenant_id"] for d in logs.docs())


# ------------------------------------------------------------------ both layouts


def test_termination_takes_one_tenant_by_term_and_counts_exactly(
    logs: SharedLogs, es_store: ElasticsearchStore, ids: dict[str, str]
) -> None:
    logs.write([(ids["t"], JAN, {"agent_id": "a1"}), (ids["t"], FEB, {}), (ids["long"], JAN, {"agent_id": "a1"}),
                (ids["long"], FEB, {})])
    target, sel = logs.target, TenantSelection(ids["t"])
    assert es_store.count(target, sel) == 2
    dry = es_store.purge(target, sel, dry_run=True)
    assert (dry.planned, dry.deleted, dry.dry_run) == (2, 0, True) and len(logs.docs()) == 4
    result = es_store.purge(target, sel)
    assert (result.planned, result.deleted, result.method) == (2, 2, "delete_by_query")
    assert es_store.verify(target, sel) == 0
    assert _tenants_of(logs) == [ids["long"]] * 2  # the tenant whose id extends it keeps everything
    assert es_store.purge(target, sel).deleted == 0  # idempotent


def test_subject_deletion_spares_held_subjects_and_neighbours(
    logs: SharedLogs, es_store: ElasticsearchStore, ids: dict[str, str]
) -> None:
    t = ids["t"]
    logs.write([(t, JAN, {"agent_id": "al"}), (t, JAN, {"agent_id": "alice"}),
                (t, FEB, {"agent_id": "al", "phone_number": "+6591234567"}), (ids["long"], JAN, {"agent_id": "al"})])
    sel = _subject(t, "al", frozenset({(t, "phone_number", "+6591234567")}))
    result = es_store.purge(logs.target, sel)
    assert (result.planned, result.deleted) == (1, 1)
    assert es_store.verify(logs.target, sel) == 0
    left = sorted((d["tenant_id"], d["agent_id"]) for d in logs.docs())
    assert left == sorted([(t, "alice"), (t, "al"), (ids["long"], "al")])  # "alice" starts with "al"; held stays


def test_expiry_thins_around_extended_and_held_tenants_and_subjects(
    logs: SharedLogs, es_store: ElasticsearchStore, ids: dict[str, str]
) -> None:
    t, ext, held = ids["t"], ids["ext"], ids["held"]
    if logs.stream:  # January in its own backing index, February and March in the next (the write index)
        logs.write([(t, JAN, {}), (ids["long"], JAN, {})])
        logs.rollover()
        logs.write([(t, FEB, {}), (ext, FEB, {}), (held, FEB, {}), (t, FEB, {"agent_id": "bob"}), (t, MAR, {})])
    else:
        logs.write([(t, JAN, {}), (ids["long"], JAN, {}), (t, FEB, {}), (ext, FEB, {}), (held, FEB, {}),
                    (t, FEB, {"agent_id": "bob"}), (t, MAR, {})])
    sel = ExpiredSelection(before=CUT, exclude_tenants=frozenset({ext, held}),
                           exclude_subjects=frozenset({(t, "agent", "bob")}))
    before = logs.existing()
    result = es_store.purge(logs.target, sel)
    assert (result.planned, result.deleted) == (3, 3)  # t and long in January, t's February without bob
    assert result.method == "delete_index+delete_by_query"
    assert len(result.details["index_names"]) == 1 and result.details["index_names"][0] in before  # January, whole
    assert es_store.verify(logs.target, sel) == 0
    left = sorted((d["tenant_id"], d["@timestamp"][:7], d.get("agent_id")) for d in logs.docs())
    assert left == sorted([(ext, "2025-02", None), (held, "2025-02", None), (t, "2025-02", "bob"),
                           (t, "2025-03", None)])
    # The extended tenant's own, later cut-off thins it alone; never a whole shared index.
    own = ExpiredSelection(before=datetime(2025, 4, 1, tzinfo=SGT), tenant=ext)
    assert es_store.purge(logs.target, own).deleted == 1 and es_store.verify(logs.target, own) == 0
    assert sorted(d["tenant_id"] for d in logs.docs()) == sorted([held, t, t])


def test_dated_units_and_planner_totals(logs: SharedLogs, es_store: ElasticsearchStore, ids: dict[str, str]) -> None:
    logs.write([(ids["t"], JAN, {}), (ids["long"], FEB, {})])
    units = es_store.dated_units(logs.target)
    assert units and all(u.tenant is None for u in units)
    if logs.stream:
        (unit,) = units  # one backing index, dated by its oldest and newest documents
        assert unit.start == JAN and unit.end == FEB + timedelta(milliseconds=1)
    else:
        assert [u.start for u in units] == [datetime(2025, 1, 1, tzinfo=SGT), datetime(2025, 2, 1, tzinfo=SGT)]
    every = ExpiredSelection(before=datetime(9999, 1, 1, tzinfo=SGT), units=tuple(u.name for u in units))
    assert es_store.count(logs.target, every) == 2


# ------------------------------------------------------------------ the data stream


@pytest.fixture
def stream(es_client: Any) -> Iterator[SharedLogs]:
    helper = SharedLogs(es_client, _target("data_stream"), SGT)
    yield helper
    helper.cleanup()


def test_an_expired_write_index_is_rolled_over_first_then_deleted_by_name(
    stream: SharedLogs, es_store: ElasticsearchStore, ids: dict[str, str], standin: StandIn
) -> None:
    stream.write([(ids["t"], JAN, {}), (ids["long"], FEB, {})])
    (write_index,) = stream.backing()
    seq = standin.last_seq()
    result = es_store.purge(stream.target, ExpiredSelection(before=CUT))
    assert (result.planned, result.deleted, result.details["index_names"]) == (2, 2, [write_index])
    paths = [(r["method"], r["path"].split("?")[0]) for r in standin.requests_since(seq)]
    rolled = paths.index(("POST", f"/{stream.stream}/_rollover"))
    assert rolled < paths.index(("DELETE", f"/{write_index}"))
    backing = stream.backing()
    assert write_index not in backing and len(backing) == 1  # the stream lives on, with a new write index
    stream.write([(ids["t"], MAR, {})])
    assert len(stream.docs()) == 1


def test_terminations_on_a_stream_delete_by_query_on_the_stream_throttled(
    stream: SharedLogs, es_store: ElasticsearchStore, ids: dict[str, str], standin: StandIn
) -> None:
    stream.write([(ids["t"], JAN, {}), (ids["long"], JAN, {})])
    seq = standin.last_seq()
    assert es_store.purge(stream.target, TenantSelection(ids["t"])).deleted == 1
    dbq = [r["path"] for r in standin.requests_since(seq) if "_delete_by_query" in r["path"]]
    assert len(dbq) == 1 and dbq[0].startswith(f"/{stream.stream}/_delete_by_query?")
    assert "requests_per_second=" in dbq[0] and "slices=auto" in dbq[0] and "wait_for_completion=false" in dbq[0]
    assert not [r for r in standin.requests_since(seq) if r["method"] == "DELETE" and "/.tasks/" not in r["path"]]


# ------------------------------------------------------------------ aliases (per-tenant layout)


def test_an_alias_never_reaches_delete_index(
    log_indices: LogIndices, es_store: ElasticsearchStore, es_target: ElasticsearchTarget, policy: Policy,
    ids: dict[str, str], standin: StandIn,
) -> None:
    from datetime import date

    (name,) = log_indices.create(ids["t"], [date(2025, 1, 1)], docs=[{"agent_id": "a1"}])
    alias = log_indices.name(ids["t"], date(2025, 2, 1))  # an alias named like the next month's index
    log_indices.client.indices.put_alias(index=name, name=alias)
    assert es_store._concrete([alias, name]) == ([name], [alias])
    seq = standin.last_seq()
    result = es_store.purge(es_target, TenantSelection(ids["t"]))
    assert result.deleted == 1 and not log_indices.exists(name)
    deletes = [r["path"].split("?")[0] for r in standin.requests_since(seq) if r["method"] == "DELETE"]
    assert f"/{name}" in deletes and not [p for p in deletes if alias in p]
