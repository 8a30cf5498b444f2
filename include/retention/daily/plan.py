"""Plan one category's daily run: every selection due as of the run's instant, counted, breaker-checked.

What the plan holds is JSON without personal data (a subject appears as its keyed hash), so
it travels in XCom to the purge tasks on any executor and is resolved again there.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any, Collection, Mapping, Sequence

from include.retention.crypto import RetentionCrypto
from include.retention.daily import breaker
from include.retention.expiry import PlannedPurge, plan_expired, plan_requests
from include.retention.facts import LedgerFacts
from include.retention.policy import CosTarget, MySqlTarget, Policy, Target
from include.retention.selections import ExpiredSelection, Selection, SubjectSelection, TenantSelection, selection_to_doc
from include.retention.stores import store_for
from include.retention.stores.base import RetentionStore, TenantCounts, as_column_source, as_explicit_keys
from include.retention.subject_keys import held_object_keys, subject_object_keys
from include.retention.timeutil import UTC

log = logging.getLogger(__name__)

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def _target_total(store: RetentionStore, target: Target, units: Sequence[Any]) -> int | None:  # type: ignore[type-arg]
    """Everything the target holds, for the circuit breaker; None where a store cannot say."""
    if not target.is_dated:
        return None
    return store.count(target, ExpiredSelection(before=FAR_FUTURE, units=tuple(u.name for u in units)))


def _shared_by_tenant(store: RetentionStore, target: Target,  # type: ignore[type-arg]
                      by_age: Sequence[tuple[ExpiredSelection, int]]) -> dict[ExpiredSelection, dict[str, int]]:
    """Per tenant, what each sweep over every tenant would take, where the store can say in one query."""
    if not isinstance(store, TenantCounts):
        return {}
    return {s: store.count_by_tenant(target, s) for s, count in by_age  # type: ignore[arg-type]
            if s.tenant is None and count}


def _deleted_subjects_in(sweep: ExpiredSelection, planned: Sequence[tuple[Selection, int]],
                         terminated: Collection[str]) -> frozenset[tuple[str, str, str]]:
    """The deleted subjects whose records ``sweep`` may also take (tenants not terminated)."""
    return frozenset(
        (s.tenant, s.subject_type, s.subject_id) for s, _ in planned
        if isinstance(s, SubjectSelection) and s.tenant not in terminated and s.tenant not in sweep.exclude_tenants
        and sweep.tenant in (None, s.tenant)
    )


def _distinct_planned(store: RetentionStore, target: Target,  # type: ignore[type-arg]
                      planned: Sequence[tuple[Selection, int]],
                      shared_by_tenant: Mapping[ExpiredSelection, Mapping[str, int]]) -> int:
    """The target's planned records, each once, for the breaker's share.

    A termination takes everything of its tenant, so a subject's or an expiry's records of
    that tenant count with it alone. A sweep's records that a deleted subject's selection also
    takes count once: the sweep is counted again without them, where the store keeps exactly
    a subject's records out (MySQL, by its column; elsewhere a store may keep more, a whole
    tenant, which would count too little). What is still counted twice errs high, on the
    strict side: a sweep's rows of a terminated tenant where the store has no per-tenant
    counts, a record naming two deleted subjects, and other stores' expired subject records.
    """
    terminated = {s.tenant: n for s, n in planned if isinstance(s, TenantSelection)}
    distinct = sum(terminated.values())
    for selection, count in planned:
        if isinstance(selection, TenantSelection):
            continue
        if isinstance(selection, ExpiredSelection):
            deleted = _deleted_subjects_in(selection, planned, terminated) if isinstance(target, MySqlTarget) else frozenset()
            if deleted and count:
                count = store.count(target, replace(selection, exclude_subjects=selection.exclude_subjects | deleted))
            if selection.tenant is None:
                by_tenant = shared_by_tenant.get(selection, {})
                distinct += count - sum(by_tenant.get(t, 0) for t in terminated.keys() - selection.exclude_tenants)
            elif selection.tenant not in terminated:
                distinct += count
        elif selection.tenant not in terminated:
            distinct += count
    return distinct


def _tenant_shares(store: RetentionStore, target: Target, units: Sequence[Any],  # type: ignore[type-arg]
                   by_age: Sequence[tuple[ExpiredSelection, int]], min_records: int,
                   shared_by_tenant: Mapping[ExpiredSelection, Mapping[str, int]]) -> list[dict[str, Any]]:
    """The breaker's per-tenant lines of one target: what the run would delete by age of each
    tenant's records, for the tenants with at least ``min_records`` planned."""
    planned: Counter[str] = Counter()
    for selection, count in by_age:
        if selection.tenant is not None:
            planned[selection.tenant] += count
        elif selection in shared_by_tenant:
            planned.update(shared_by_tenant[selection])
    large = sorted(t for t, n in planned.items() if n >= min_records)
    if not large or not target.is_dated:
        return []
    every_unit = tuple(u.name for u in units)
    if isinstance(store, TenantCounts):
        totals = store.count_by_tenant(target, ExpiredSelection(before=FAR_FUTURE, units=every_unit))  # type: ignore[arg-type]
    else:
        totals = {t: store.count(target, ExpiredSelection(
            before=FAR_FUTURE, tenant=t, units=tuple(u.name for u in units if u.tenant == t))) for t in large}
    return [breaker.tenant_share(target.qualified_name, t, planned[t], totals.get(t, 0)) for t in large]


def _counts(store: RetentionStore, target: Target,  # type: ignore[type-arg]
            purges: Sequence[PlannedPurge]) -> dict[Selection, int]:
    """What each planned selection (and each held-out subject's selection without its holds)
    matches now, counted together: a one-pass store (Redis) lists the target once for all."""
    wanted: dict[Selection, None] = {}
    for purge in purges:
        selection = purge.selection
        if isinstance(selection, SubjectSelection) and isinstance(target, CosTarget) and target.subject_keys_from:
            continue  # counted by its explicit object keys
        wanted[selection] = None
        if isinstance(selection, SubjectSelection) and selection.exclude_subjects:
            wanted[selection.without_holds()] = None
    return dict(zip(wanted, store.count_each(target, list(wanted))))


def plan_category(
    policy: Policy,
    category_name: str,
    as_of: datetime,
    options: breaker.RunOptions,
    *,
    crypto: RetentionCrypto,
    facts: LedgerFacts,
    stores: Mapping[str, RetentionStore] | None = None,  # type: ignore[type-arg]
) -> dict[str, Any]:
    """Plan one category's run: every selection due as of ``as_of``, counted, breaker-checked."""
    category = policy.category(category_name)
    tz = policy.timezone
    stores = dict(stores or {})
    specs: list[dict[str, Any]] = []
    skipped: list[str] = []
    shares: list[dict[str, Any]] = []
    tenant_shares: list[dict[str, Any]] = []
    for target in category.targets:
        store = stores.setdefault(target.store, store_for(target.store, tz))
        units = store.dated_units(target) if target.is_dated else []
        by_age = plan_expired(target, as_of, tz, units, facts.overrides, facts.holds)
        by_request = plan_requests(category, target, as_of, facts.terminations, facts.deletions, facts.holds)
        skipped += [f"{target.qualified_name}: {why}" for why in by_age.skipped + by_request.skipped]
        planned_here: list[tuple[Selection, int]] = []
        aged: list[tuple[ExpiredSelection, int]] = []
        counts = _counts(store, target, by_age.purges + by_request.purges)
        for purge in by_age.purges + by_request.purges:
            spec: dict[str, Any] = {
                "target": target.qualified_name,
                "store": target.store,
                "selection": selection_to_doc(purge.selection, crypto),
                "reason": purge.reason,
                "why": {"rule": purge.rule, "withheld": dict(purge.withheld)},
            }
            withheld = 0
            if isinstance(purge.selection, SubjectSelection) and isinstance(target, CosTarget) and target.subject_keys_from:
                # Recordings carry no subject: take the keys the subject's call records point at.
                mysql = as_column_source(stores.setdefault("mysql", store_for("mysql", tz)))
                cos = as_explicit_keys(store)
                spec["keys"] = subject_object_keys(policy, target, purge.selection, mysql)
                count = cos.count_keys(target, purge.selection.tenant, spec["keys"]) if spec["keys"] else 0
                held_keys = held_object_keys(policy, target, purge.selection, mysql)
                withheld = cos.count_keys(target, purge.selection.tenant, sorted(held_keys)) if held_keys else 0
            else:
                count = counts[purge.selection]
                if isinstance(purge.selection, SubjectSelection) and purge.selection.exclude_subjects:
                    withheld = counts[purge.selection.without_holds()] - count
            if withheld:
                # Counts only: the held subject is not named.
                spec["withheld"] = withheld
                spec["why"]["withheld"]["records"] = withheld
                assert isinstance(purge.selection, SubjectSelection)
                skipped.append(f"{target.qualified_name}: {withheld} record(s) of subject "
                               f"{purge.selection.subject_hash[:12]} kept under another subject's legal hold")
            if count == 0 and not isinstance(purge.selection, ExpiredSelection):
                continue  # a request sweep with nothing new to delete
            planned_here.append((purge.selection, count))
            if isinstance(purge.selection, ExpiredSelection):
                aged.append((purge.selection, count))
            spec["planned"] = count
            specs.append(spec)
        shared_by_tenant = _shared_by_tenant(store, target, aged)
        distinct = _distinct_planned(store, target, planned_here, shared_by_tenant)
        total = _target_total(store, target, units) if distinct else None
        shares.append(breaker.target_share(target.qualified_name, distinct, total))
        tenant_shares += _tenant_shares(store, target, units, aged, options.tenant_min_records, shared_by_tenant)
        log.info("Planned %d record(s) in %s (%s of %s)", distinct, target.qualified_name,
                 f"{shares[-1]['share']:.1%}", total)
    plan = {
        "category": category_name,
        "as_of": as_of.isoformat(),
        "dry_run": options.dry_run,
        "specs": specs,
        "skipped": skipped,
        "breaker": shares,
        "breaker_tenants": tenant_shares,
        "override_reason": options.override_reason if options.allow_large_purge else "",
        "max_share": options.max_share,
        "needs_approval": [],
    }
    tripped = breaker.tripped_lines(shares, options, tenant_shares)
    if tripped and options.on_trip == "ask" and not options.allow_large_purge:
        # A person decides (the approve task); a dry run deletes nothing, so it does not wait.
        plan["needs_approval"] = [] if options.dry_run else tripped
        log.warning("Circuit breaker: %s; %s", "; ".join(breaker.describe_line(b) for b in tripped),
                    "a dry run, so nobody is asked" if options.dry_run else "waiting for an approval")
        return plan
    breaker.check(shares, options, tenant_shares)
    return plan
