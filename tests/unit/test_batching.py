"""Batches of the daily purge: specs that can select the same record never go to different
mapped tasks (the audit's settling stays exact on several workers), every spec goes exactly
once, in plan order within its group, and the mapped list stays within ``max_map_length``."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.retention.daily.batching import (PARALLEL_PURGES_PER_RUN, RECORDS_PER_MAPPED_TASK, SPEC_COST_RECORDS,
                                              batches, overlap_groups)

Spec = dict[str, Any]


def expired(target: str, tenant: str | None = None, exclude: tuple[str, ...] = (), store: str = "mysql",
            planned: int = 0) -> Spec:
    return {"target": target, "store": store, "planned": planned,
            "selection": {"kind": "expired", "before": "2026-01-01T00:00:00+00:00", "tenant": tenant,
                          "exclude_tenants": sorted(exclude), "exclude_subject_hashes": [], "units": []}}


def terminated(target: str, tenant: str, store: str = "mysql", planned: int = 0) -> Spec:
    return {"target": target, "store": store, "planned": planned, "selection": {"kind": "tenant", "tenant": tenant}}


def deleted(target: str, tenant: str, subject: str, store: str = "mysql") -> Spec:
    return {"target": target, "store": store,
            "selection": {"kind": "subject", "tenant": tenant, "subject_type": "agent", "subject_hash": subject}}


def overlap(a: Spec, b: Spec) -> bool:
    """The oracle, from the selections' meaning: can ``a`` and ``b`` select the same record?"""
    if a["target"] != b["target"]:
        return False
    ta, tb = a["selection"]["tenant"], b["selection"]["tenant"]
    if ta is None and tb is None:
        return True
    if ta is None:
        return tb not in a["selection"]["exclude_tenants"]
    if tb is None:
        return ta not in b["selection"]["exclude_tenants"]
    return bool(ta == tb)


def check(specs: list[Spec], store: str, max_map_length: int) -> list[list[Spec]]:
    """Every property a batching must have; returns the batches for case-specific checks."""
    got = batches(specs, store, max_map_length)
    mine = [s for s in specs if s["store"] == store]
    placed = [id(s) for batch in got for s in batch]
    assert sorted(placed) == sorted(id(s) for s in mine), "every spec of the store in exactly one batch"
    assert all(batch for batch in got), "no empty batch"
    assert len(got) <= max_map_length
    where = {id(s): (b, i) for b, batch in enumerate(got) for i, s in enumerate(batch)}
    for a, b in combinations(mine, 2):  # ``a`` comes first in the plan
        if overlap(a, b):
            assert where[id(a)][0] == where[id(b)][0], f"overlapping specs split: {a} / {b}"
            assert where[id(a)][1] < where[id(b)][1], "plan order kept within a group"
    return got


def test_tenants_whose_ids_share_a_prefix_do_not_overlap() -> None:
    """12 and 123 are different tenants: their own specs may run in parallel."""
    specs = [expired("call_data.recordings", "12", store="cos"), expired("call_data.recordings", "123", store="cos"),
             terminated("call_data.recordings", "12", store="cos")]
    groups = overlap_groups(specs)
    assert groups == [[specs[0], specs[2]], [specs[1]]]
    check(specs, "cos", 3)


def test_a_termination_and_a_subject_deletion_of_one_tenant_stay_together_in_order() -> None:
    specs = [expired("call_data.recordings", "7", store="cos"), terminated("call_data.recordings", "7", store="cos"),
             deleted("call_data.recordings", "7", "h1", store="cos"), expired("call_data.recordings", "8", store="cos")]
    assert overlap_groups(specs) == [specs[:3], [specs[3]]]


def test_a_shared_sweep_takes_in_every_tenant_it_does_not_exclude() -> None:
    """MySQL style: one sweep over every tenant but the extended 9, whose own sweep overlaps only 9's specs."""
    t = "call_data.call_records"
    specs = [expired(t, exclude=("9",)), expired(t, "9"), terminated(t, "12"), deleted(t, "123", "h"),
             terminated(t, "9"), terminated("call_analytics.service_records", "12")]
    assert overlap_groups(specs) == [[specs[0], specs[2], specs[3]], [specs[1], specs[4]], [specs[5]]]


def test_little_work_over_many_tenants_is_one_task() -> None:
    """60 tenants' sweeps of a few objects each and a termination: one task instance, not one per 25 tenants."""
    t = "call_data.recordings"
    specs = [expired(t, str(n), store="cos", planned=20) for n in range(100, 160)]
    specs.insert(30, terminated(t, "112", store="cos", planned=300))
    [batch] = check(specs, "cos", 1024)
    assert len(batch) == len(specs)


def test_task_instances_grow_with_the_records_up_to_what_runs_at_once() -> None:
    t = "call_data.recordings"
    per_task = RECORDS_PER_MAPPED_TASK - SPEC_COST_RECORDS
    for tenants, expected in ((1, 1), (2, 2), (3, 3), (PARALLEL_PURGES_PER_RUN, PARALLEL_PURGES_PER_RUN),
                              (50, PARALLEL_PURGES_PER_RUN)):
        specs = [expired(t, str(n), store="cos", planned=per_task) for n in range(tenants)]
        assert len(check(specs, "cos", 1024)) == expected, tenants


def test_the_task_count_does_not_grow_with_tenants_at_the_same_work() -> None:
    """The same records spread over 100 or 5,000 tenants: the same number of task instances."""
    t = "call_data.recordings"
    few = [expired(t, str(n), store="cos", planned=5_000) for n in range(100)]
    many = [expired(t, str(n), store="cos", planned=100) for n in range(5_000)]
    assert len(check(few, "cos", 1024)) == len(check(many, "cos", 1024)) == PARALLEL_PURGES_PER_RUN


def test_work_is_spread_evenly_over_the_batches() -> None:
    t = "call_data.recordings"
    sizes = [90_000, 10_000, 60_000, 40_000, 30_000, 70_000, 20_000, 80_000]
    specs = [expired(t, str(n), store="cos", planned=size) for n, size in enumerate(sizes)]
    got = check(specs, "cos", 1024)
    loads = [sum(s["planned"] for s in b) for b in got]
    assert len(got) == PARALLEL_PURGES_PER_RUN and max(loads) - min(loads) <= 20_000, loads


def test_a_group_larger_than_a_batch_goes_whole() -> None:
    """A shared sweep and 40 requests in its target: one group, one task, never split."""
    t = "call_data.call_records"
    specs = ([expired(t, planned=400_000)] + [deleted(t, "12", f"h{n}") for n in range(40)]
             + [terminated("call_analytics.call_metrics", "5", planned=80_000)])
    got = check(specs, "mysql", 1024)
    assert [len(b) for b in got] == [41, 1]


def test_the_mapped_list_stays_within_max_map_length() -> None:
    specs = [expired("call_data.recordings", str(n), store="cos", planned=10_000) for n in range(1, 1001)]
    got = check(specs, "cos", 2)
    assert len(got) == 2 and sum(map(len, got)) == 1000


@pytest.mark.parametrize("max_map_length", [0, -1])
def test_a_map_length_below_one_is_refused(max_map_length: int) -> None:
    with pytest.raises(ValueError, match="max_map_length"):
        batches([expired("t")], "mysql", max_map_length)


def test_no_specs_of_the_store_no_batches() -> None:
    assert batches([expired("call_data.recordings", "1", store="cos")], "mysql", 8) == []


TARGETS = ("call_data.call_records", "call_data.recordings")
TENANTS = ("1", "12", "123", "7")


@st.composite
def plans(draw: st.DrawFn) -> list[Spec]:
    """A plan's specs in the planner's order per target: sweeps first, then requests."""
    specs: list[Spec] = []
    for target in draw(st.lists(st.sampled_from(TARGETS), unique=True, min_size=1)):
        store = "mysql" if target.endswith("call_records") else "cos"
        if draw(st.booleans()):
            specs.append(expired(target, exclude=tuple(draw(st.sets(st.sampled_from(TENANTS)))), store=store))
        for tenant in draw(st.lists(st.sampled_from(TENANTS), unique=True)):
            specs.append(expired(target, tenant, store=store))
        for _ in range(draw(st.integers(0, 40))):
            tenant = draw(st.sampled_from(TENANTS))
            specs.append(draw(st.sampled_from([terminated(target, tenant, store),
                                               deleted(target, tenant, f"h{len(specs)}", store)])))
    return specs


@given(plans(), st.sampled_from(["mysql", "cos"]), st.integers(1, 6))
def test_batching_keeps_overlapping_specs_together(specs: list[Spec], store: str, max_map_length: int) -> None:
    check(specs, store, max_map_length)


def test_a_one_pass_stores_specs_of_a_target_share_one_batch() -> None:
    specs = ([terminated("r.a", str(t), store="redis", planned=2_000) for t in range(60)]
             + [deleted("r.a", "7", "h", store="redis"), terminated("r.b", "1", store="redis", planned=60_000)])
    got = batches(specs, "redis", 1024, one_pass={"redis"})
    assert [len(b) for b in got] == [61, 1]  # all of r.a in one task (one SCAN pass), in plan order
    assert got[0] == specs[:61]
    assert len(batches(specs, "redis", 1024)) > 2  # without it, tenants are spread over tasks


@pytest.mark.parametrize("parallel", [0, -2])
def test_a_parallelism_below_one_is_refused(parallel: int) -> None:
    with pytest.raises(ValueError, match="parallel"):
        batches([expired("t")], "mysql", 8, parallel=parallel)
