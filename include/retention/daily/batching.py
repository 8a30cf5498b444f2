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

SPECS_PER_MAPPED_TASK = 25

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


def batches(specs: Sequence[Spec], store: str, max_map_length: int, *,
            one_pass: Collection[str] = ()) -> list[list[Spec]]:
    """The specs of ``store`` in batches, one per mapped task, at most ``max_map_length`` of them.

    A group of overlapping specs is never split: a batch takes whole groups in order while they
    fit ``size`` specs (a larger group goes alone). Two neighbouring batches then hold more than
    ``size`` specs together, so with ``size`` at least twice the specs per allowed task the
    mapped list stays within ``max_map_length``.

    :param one_pass: stores whose specs of one target stay in one batch (``overlap_groups``).
    """
    if max_map_length < 1:
        raise ValueError(f"max_map_length must be at least 1, got {max_map_length}")
    mine = [s for s in specs if s["store"] == store]
    size = max(SPECS_PER_MAPPED_TASK, -(-2 * len(mine) // max_map_length))
    packed: list[list[Spec]] = []
    for group in overlap_groups(mine, one_pass=one_pass):
        if packed and len(packed[-1]) + len(group) <= size:
            packed[-1].extend(group)
        else:
            packed.append(list(group))
    return packed
