"""Batches of the daily purge: specs that can select the same record never go to different
mapped tasks (the audit's settling stays exact on several workers), every spec goes exactly
once, in plan order within its group, and the mapped list stays within ``max_map_length``."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.retention.daily.batching import SPECS_PER_MAPPED_TASK, batches, overlap_groups

Spec = dict[str, Any]


def expired(target: str, tenant: str | None = None, exclude: tuple[str, ...] = (), store: str = "mysql") -> Spec:
    return {"target": target, "store": store,
            "selection": {"kind": "expired", "before": "2026-01-01T00:00:00+00:00", "tenant": tenant,
                          "exclude_tenants": sorted(exclude), "exclude_subject_hashes": [], "units": []}}


def terminated(target: str, tenant: str, store: str = "mysql") -> Spec:
    return {"target": target, "store": store, "selection": {"kind": "tenant", "tenant": tenant}}


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


def test_more_specs_than_fit_in_one_batch() -> None:
    """60 tenants' sweeps and a termination in one of them: three batches, the terminated tenant's pair in one."""
    t = "call_data.recordings"
    specs = [expired(t, str(n), store="cos") for n in range(100, 160)]
    specs.insert(30, terminated(t, "112", store="cos"))
    got = check(specs, "cos", 1024)
    assert [len(b) for b in got] == [SPECS_PER_MAPPED_TASK, SPECS_PER_MAPPED_TASK, 61 - 2 * SPECS_PER_MAPPED_TASK]
    assert [b for b in got if specs[12] in b] == [b for b in got if specs[30] in b]


def test_a_group_larger_than_a_batch_goes_whole() -> None:
    """A shared sweep and 40 requests in its target: one group, one task, never split."""
    t = "call_data.call_records"
    specs = [expired(t)] + [deleted(t, "12", f"h{n}") for n in range(40)] + [terminated("call_analytics.call_metrics", "5")]
    got = check(specs, "mysql", 1024)
    assert [len(b) for b in got] == [41, 1]


def test_the_mapped_list_stays_within_max_map_length() -> None:
    specs = [expired("call_data.recordings", str(n), store="cos") for n in range(1, 1001)]
    got = check(specs, "cos", 16)
    assert len(got) <= 16 and sum(map(len, got)) == 1000


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
    specs = [terminated("r.a", str(t), store="redis") for t in range(60)] + [deleted("r.a", "7", "h", store="redis"),
                                                                               terminated("r.b", "1", store="redis")]
    got = batches(specs, "redis", 1024, one_pass={"redis"})
    assert [len(b) for b in got] == [61, 1]  # all of r.a in one task (one SCAN pass), in plan order
    assert got[0] == specs[:61]
    assert len(batches(specs, "redis", 1024)) > 2  # without it, tenants are spread over tasks
