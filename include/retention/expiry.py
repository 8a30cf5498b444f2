"""Expiry planning: pure functions from (as-of instant, rule, what exists, ledger facts) to
what has expired and why. No clock, no I/O: the as-of instant always comes from the run
(``data_interval_end``, or ``run_after`` for a manual run).

The boundary rule, in one place
-------------------------------
A record timestamped ``t`` has expired as of the instant ``A`` under a rule of N calendar
months when ``t < cutoff``, where ``cutoff`` is the *start of the calendar day* that lies N
calendar months before ``A``'s calendar day, both days taken in the policy's time zone. When
that day does not exist (31 August minus 6 months), the month's last day is used (28 or 29
February). A record stamped exactly at the cut-off stays.

So a record from 31 May (Singapore time) is kept through 30 November and expires as of
1 December; a record from 29 February 2024 is kept through 31 August 2024 (31 August
minus 6 months is clamped to 29 February) and expires as of 1 September. The rule never
keeps a record for less than N calendar months, sometimes for up to three days more.
Because the
cut-off never decreases as ``A`` grows, a run for an earlier date deletes a subset of what
a run for a later date deletes: backfills and reruns are safe.

A rule of N days works the same way with N calendar days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Iterable, Sequence

from include.retention.facts import LegalHold, SubjectDeletion, TenantOverride, Termination
from include.retention.policy import Category, CosTarget, ElasticsearchTarget, Retention, Target
from include.retention.reasons import extended_rule, policy_rule, request_rule, withheld
from include.retention.timeutil import add_months, local_day, start_of_day
from include.retention.selections import (
    DatedUnit,
    ExpiredSelection,
    Selection,
    SubjectSelection,
    TenantSelection,
)

# --------------------------------------------------------------------------- the cut-off


def cutoff(as_of: datetime, retention: Retention, tz: tzinfo, *, months: int | None = None) -> datetime | None:
    """The instant before which records have expired as of ``as_of``; None if age never expires them.

    :param months: a tenant's extended retention in months, replacing the rule's months.
        It can only lengthen retention: the longer of the two is used.
    """
    if retention.until_termination:
        return None
    today = local_day(as_of, tz)
    if retention.months is not None:
        keep = max(retention.months, months or 0)
        return start_of_day(add_months(today, -keep), tz)
    assert retention.days is not None
    return start_of_day(today - timedelta(days=retention.days), tz)


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class PlannedPurge:
    """One selection in one target, and why it is due: ``reason`` for people, ``rule`` and
    ``withheld`` as data for the audit (``reasons.py``)."""

    target: str
    selection: Selection
    reason: str
    rule: dict[str, object] = field(default_factory=dict)
    withheld: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetPlan:
    target: str
    purges: tuple[PlannedPurge, ...]
    skipped: tuple[str, ...] = ()  # why something that looked due is kept (holds)


# --------------------------------------------------------------------------- planning


def held_subjects(holds: Iterable[LegalHold], target: Target) -> frozenset[tuple[str, str, str]]:
    """(tenant, subject_type, subject_id) of the held subjects this target can name."""
    return frozenset(
        (h.tenant_id, h.subject_type, h.subject_id)
        for h in holds
        if not h.whole_tenant and h.subject_type in target.subject_types and h.subject_id
    )


def _addresses_units_per_tenant(target: Target) -> bool:
    """COS prefixes and per-tenant ES indices carry the tenant in their name; MySQL partitions, shared
    ES indices and data streams do not."""
    return isinstance(target, CosTarget) or (isinstance(target, ElasticsearchTarget) and not target.layout.shared)


def plan_expired(
    target: Target,
    as_of: datetime,
    tz: tzinfo,
    units: Sequence[DatedUnit],
    overrides: Iterable[TenantOverride] = (),
    holds: Iterable[LegalHold] = (),
) -> TargetPlan:
    """What has expired by age in one target as of ``as_of``.

    :param units: the dated units that exist in the store (partitions, day prefixes, indices).
    :param overrides: extended retention; only honoured where the rule is extendable.
    :param holds: legal holds; a held tenant is never selected. A held subject is excluded
        row by row where the store can address subjects (MySQL); elsewhere (object
        prefixes, indices, backups) its whole tenant is kept, because a unit cannot be
        deleted in part.
    """
    retention = target.retention
    default_cut = cutoff(as_of, retention, tz)
    if default_cut is None:
        return TargetPlan(target.qualified_name, ())
    holds = list(holds)
    held_tenants = {h.tenant_id for h in holds if h.whole_tenant}
    held = held_subjects(holds, target)
    tenants_with_subject_holds = {h.tenant_id for h in holds if not h.whole_tenant}
    extended: dict[str, int] = {}
    granted: dict[str, TenantOverride] = {}
    if retention.extendable and retention.months is not None:
        for o in overrides:
            if o.category == target.category and o.retention_months > retention.months:
                extended[o.tenant_id] = o.retention_months
                granted[o.tenant_id] = o
    tenant_cut = {t: cutoff(as_of, retention, tz, months=m) for t, m in extended.items()}
    rule = retention.describe()
    day = local_day(as_of, tz).isoformat()
    skipped = [f"tenant {t} is on legal hold: nothing of it is selected" for t in sorted(held_tenants)]
    purges: list[PlannedPurge] = []

    if _addresses_units_per_tenant(target):
        blocked = held_tenants | tenants_with_subject_holds
        skipped += [
            f"tenant {t} has a subject on legal hold: its {target.name} units are kept whole"
            for t in sorted(tenants_with_subject_holds - held_tenants)
        ]
        by_tenant: dict[str, list[DatedUnit]] = {}
        for unit in units:
            if unit.tenant is not None and unit.tenant not in blocked:
                by_tenant.setdefault(unit.tenant, []).append(unit)
        for tenant in sorted(by_tenant):
            cut = tenant_cut.get(tenant) or default_cut
            expired = sorted(u.name for u in by_tenant[tenant] if u.end <= cut)
            if expired:
                why = f"older than {extended[tenant]} calendar months (extended)" if tenant in extended else f"older than {rule}"
                selection = ExpiredSelection(before=cut, tenant=tenant, units=tuple(expired))
                purges.append(
                    PlannedPurge(
                        target.qualified_name,
                        selection,
                        f"{why} as of {day}: {len(expired)} unit(s) end on or before {cut.isoformat()}",
                        extended_rule(retention, granted[tenant]) if tenant in granted else policy_rule(retention),
                        withheld(selection, holds, granted, blocked_tenants=blocked),
                    )
                )
        return TargetPlan(target.qualified_name, tuple(purges), tuple(skipped))

    # Shared units (MySQL partitions, or no units at all): one selection for every tenant on
    # the default rule, and one per tenant with extended retention.
    excluded = frozenset(held_tenants | set(extended))
    droppable = tuple(sorted(u.name for u in units if u.tenant is None and u.end <= default_cut))
    shared = ExpiredSelection(before=default_cut, exclude_tenants=excluded, exclude_subjects=held, units=droppable)
    purges.append(
        PlannedPurge(
            target.qualified_name,
            shared,
            f"older than {rule} as of {day}: records before {default_cut.isoformat()}"
            + (f"; {len(droppable)} whole partition(s) end on or before it" if droppable else ""),
            policy_rule(retention),
            withheld(shared, holds, granted),
        )
    )
    for tenant in sorted(set(extended) - held_tenants):
        cut = tenant_cut[tenant]
        assert cut is not None
        own = ExpiredSelection(before=cut, tenant=tenant, exclude_subjects=frozenset(s for s in held if s[0] == tenant))
        purges.append(
            PlannedPurge(
                target.qualified_name,
                own,
                f"older than {extended[tenant]} calendar months (extended storage) as of {day}: "
                f"records before {cut.isoformat()}",
                extended_rule(retention, granted[tenant]),
                withheld(own, holds),
            )
        )
    return TargetPlan(target.qualified_name, tuple(purges), tuple(skipped))


def plan_requests(
    category: Category,
    target: Target,
    as_of: datetime,
    terminations: Iterable[Termination] = (),
    deletions: Iterable[SubjectDeletion] = (),
    holds: Iterable[LegalHold] = (),
) -> TargetPlan:
    """The daily sweep for open request windows: a terminated tenant's or a deleted subject's
    data that arrived after the request was carried out, until the request's ``due_at``.

    A deleted subject's records that also name another held subject of its tenant are kept
    (a hold wins over an erasure): those subjects go into the selection's ``exclude_subjects``.
    """
    holds = list(holds)
    held_tenants = {h.tenant_id for h in holds if h.whole_tenant}
    held_here = held_subjects(holds, target)
    # A termination takes everything of the tenant, so a hold on any of its subjects stops
    # it as well (requests.validate and Runner.blocking_holds refuse it for the same reason).
    tenants_with_holds = {h.tenant_id for h in holds}
    purges: list[PlannedPurge] = []
    skipped: list[str] = []
    for t in terminations:
        if category.name not in t.categories or "termination" not in category.requests:
            continue
        if not (t.received_at <= as_of <= t.due_at):
            continue
        if t.tenant in tenants_with_holds:
            what = "is on legal hold" if t.tenant in held_tenants else "has a subject on legal hold"
            skipped.append(f"terminated tenant {t.tenant} {what}")
            continue
        purges.append(
            PlannedPurge(
                target.qualified_name,
                TenantSelection(t.tenant),
                f"tenant {t.tenant} terminated (request received {t.received_at.isoformat()}, due {t.due_at.isoformat()})",
                request_rule("termination", t.request_id),
            )
        )
    for d in deletions:
        if category.name not in d.categories or "deletion" not in category.requests:
            continue
        if d.subject_type not in target.subject_types or not (d.received_at <= as_of <= d.due_at):
            continue
        subject = (d.tenant, d.subject_type, d.subject_id)
        if d.tenant in held_tenants or subject in held_here:
            skipped.append(f"subject {d.subject_hash[:12]} of tenant {d.tenant} is on legal hold")
            continue
        others_held = frozenset(s for s in held_here if s[0] == d.tenant and s != subject)
        selection = SubjectSelection(d.tenant, d.subject_type, d.subject_id, d.subject_hash, others_held)
        purges.append(
            PlannedPurge(
                target.qualified_name,
                selection,
                f"deletion request for {d.subject_type} {d.subject_hash[:12]} of tenant {d.tenant} "
                f"(due {d.due_at.isoformat()})",
                request_rule("deletion", d.request_id),
                withheld(selection, holds),
            )
        )
    return TargetPlan(target.qualified_name, tuple(purges), tuple(skipped))

