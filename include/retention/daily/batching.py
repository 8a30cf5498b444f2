"""One store's planned specs in batches for the mapped purge tasks, overlapping specs kept together.

Two specs overlap when they can select the same record: an expired sweep and a terminated
tenant's or a deleted subject's selection in the same target. A mapped task runs its specs one
after another and stops at the first failure, so when overlapping specs share a task no other
purge of the run deletes from a selection while one of its attempts is settled (planned minus
what the next attempt finds): the audit stays exact on any number of workers.

A store that serves every selection of a target in one pass (Redis: one SCAN for all its
terminated tenants and deleted subjects, ``stores.ONE_PASS_STORES``) gets all of a target's
specs in one group, so that its mapped task scans the target once.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping, Sequence, TypeVar

# A purge task instance is worth its start-up (seconds of scheduling, a worker slot, the
# audit's locks) once it has this much to delete; below it, specs share one.
RECORDS_PER_MAPPED_TASK = 50_000
# What one spec costs beyond its records, in records: a count and a listing before it deletes.
SPEC_COST_RECORDS = 200
# The purges of one store that run at once in one run: the DAG's ``max_active_tis_per_dagrun``.
# More batches than can run at once only add task instances, and the store's pool bounds them anyway.
PARALLEL_PURGES_PER_RUN = 4

Spec = TypeVar("Spec", bound=Mapping[str, Any])


def _tenant(spec: Mapping[str, Any]) -> str | None:
    """The tenant a spec selects from; None for an expired sweep over every tenant (MySQL style)."""
    tenant = spec["selection"].get("tenant")
    return None if tenant is None else str(tenant)


def overlap_groups(specs: Sequence[Spec], *, one_pass: Collection[str] = ()) -> list[list[Spec]]:
    """``specs`` in groups of those that can select the same record, each group in plan order.

    Overlap is per target: a sweep over every tenant overlaps every spec of a tenant it does
    not exclude, a spec of one tenant only the specs of the same tenant. Groups come in the
    order of their first spec.

    :param one_pass: stores whose specs of one target all form one group (one pass serves them).
    """
    # A tenant whose specs join the target's shared sweep: some sweep there does not exclude it.
    swept: dict[str, list[frozenset[str]]] = {}
    for spec in specs:
        if _tenant(spec) is None:
            swept.setdefault(spec["target"], []).append(frozenset(spec["selection"].get("exclude_tenants") or ()))

    def group_of(spec: Spec) -> tuple[str, str | None]:
        target, tenant = spec["target"], _tenant(spec)
        if spec["store"] in one_pass:
            return target, None
        if tenant is not None and any(tenant not in excluded for excluded in swept.get(target, ())):
            return target, None
        return target, tenant

    groups: dict[tuple[str, str | None], list[Spec]] = {}
    for spec in specs:
        groups.setdefault(group_of(spec), []).append(spec)
    return list(groups.values())


def _work(group: Sequence[Mapping[str, Any]]) -> int:
    """What a group of specs will cost a task, in records: what they plan to delete plus a fixed cost each."""
    return sum(max(int(spec.get("planned") or 0), 0) + SPEC_COST_RECORDS for spec in group)


def batches(specs: Sequence[Spec], store: str, max_map_length: int, *,
            one_pass: Collection[str] = (), parallel: int = PARALLEL_PURGES_PER_RUN) -> list[list[Spec]]:
    """The specs of ``store`` in batches, one per mapped task, sized by the work they will do.

    As many batches as the run's planned records fill at ``RECORDS_PER_MAPPED_TASK`` each, and
    never more than can run at once (``parallel``) nor than ``max_map_length``: the task
    instances grow with the records to delete, not with the tenants. A group of overlapping
    specs is never split; groups go largest first to the batch with the least work, and
    within a batch they keep plan order.

    :param one_pass: stores whose specs of one target stay in one batch (``overlap_groups``).
    :param parallel: at most this many batches (the DAG's ``max_active_tis_per_dagrun``).
    """
    if max_map_length < 1:
        raise ValueError(f"max_map_length must be at least 1, got {max_map_length}")
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, got {parallel}")
    mine = [s for s in specs if s["store"] == store]
    groups = overlap_groups(mine, one_pass=one_pass)
    if not groups:
        return []
    work = [_work(g) for g in groups]
    wanted = -(-sum(work) // RECORDS_PER_MAPPED_TASK)
    count = max(1, min(wanted, parallel, max_map_length, len(groups)))
    loads = [0] * count
    members: list[list[int]] = [[] for _ in range(count)]
    for index in sorted(range(len(groups)), key=lambda g: (-work[g], g)):
        lightest = min(range(count), key=lambda b: (loads[b], b))
        loads[lightest] += work[index]
        members[lightest].append(index)
    # Groups come in the order of their first spec, so sorted indices keep plan order.
    return [[spec for g in sorted(m) for spec in groups[g]] for m in sorted(members, key=min)]
