"""Which steps a request takes: one per (category, store target), worked out from the policy alone.

Pure: no clock, no I/O. Also the dates of backups, which cannot be addressed per subject and
expire by date: when one day's backups go, and which days would outlive a request's due date.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from typing import Iterable, Sequence

from include.retention.ledger.request_steps import Step, StepSpec
from include.retention.policy import CosTarget, ElasticsearchTarget, MySqlTarget, Policy, RedisTarget, Target
from include.retention.request_states import KIND_EXPIRY, KIND_KEYS, KIND_PURGE
from include.retention.selections import ExpiredSelection
from include.retention.timeutil import local_day, start_of_day


def _location(target: Target, tenant: str, subject_type: str | None) -> str:
    """Where a step deletes, for people: rendered with the tenant, never with a subject id."""
    subject = "the subject" if subject_type else None
    if isinstance(target, MySqlTarget):
        where = f"{target.tenant_column} = {tenant}"
        if subject_type:
            where += f" and {target.subject_columns[subject_type]} = {subject}"
        return f"MySQL table {target.table} ({where})"
    if isinstance(target, RedisTarget):
        assert target.key is not None
        return f"Redis keys {target.key.text.replace('{tenant}', tenant)}*"
    if isinstance(target, CosTarget):
        assert target.prefix is not None
        return f"COS objects under {target.prefix.text.replace('{tenant}', tenant)}"
    if isinstance(target, ElasticsearchTarget):
        where = f" (documents with {target.subject_fields[subject_type]} = {subject})" if subject_type else ""
        return f"Elasticsearch indices {target.layout.where(target.index, tenant, target.tenant_field)}{where}"
    return target.qualified_name


def plan_steps(
    policy: Policy, request_type: str, tenant: str, subject_type: str | None, categories: Iterable[str]
) -> tuple[list[StepSpec], list[str]]:
    """The steps a request takes, in policy order, and notes on targets it does not reach.

    A termination purges every target of each category, tenant-wide. A deletion purges the
    subject in each target that addresses its type; a COS target whose keys live in a MySQL
    column (recordings) gets the keys that column holds for the subject; a dated target that
    cannot address the subject (backups) gets an ``expiry`` step.
    """
    steps: list[StepSpec] = []
    notes: list[str] = []
    for name in categories:
        category = policy.category(name)
        for target in category.targets:
            if request_type == "termination":
                steps.append(StepSpec(name, target.name, target.store, KIND_PURGE, _location(target, tenant, None)))
                continue
            assert subject_type is not None
            if isinstance(target, CosTarget) and target.subject_keys_from and subject_type in target.subject_types_via:
                source = policy.target(f"{name}.{target.subject_keys_from.target}")
                steps.append(StepSpec(
                    name, target.name, target.store, KIND_KEYS,
                    _location(target, tenant, None) + f" referenced by {source.name}.{target.subject_keys_from.column}",
                    source=source.name, column=target.subject_keys_from.column,
                ))
            elif subject_type in target.subject_types:
                steps.append(StepSpec(name, target.name, target.store, KIND_PURGE,
                                      _location(target, tenant, subject_type)))
            elif target.holds_backups:
                steps.append(StepSpec(name, target.name, target.store, KIND_EXPIRY,
                                      _location(target, tenant, None) + " (backups)"))
            else:
                notes.append(f"{target.qualified_name} holds no data addressed by {subject_type}")
    return steps, notes


def backup_expiry(target: CosTarget, day: date, tz: tzinfo) -> datetime:
    """When the daily purge deletes the ``day`` unit of a day-retained target: the first
    midnight (policy zone) whose cut-off (``N`` days back) is at or after the unit's end."""
    assert target.retention.days is not None
    return start_of_day(day + timedelta(days=1 + target.retention.days), tz)


def backup_days_to_purge(target: CosTarget, last_day: date, due_at: datetime, tz: tzinfo) -> list[date]:
    """Days up to ``last_day`` whose backups would outlive ``due_at``, oldest first."""
    out: list[date] = []
    day = last_day
    while backup_expiry(target, day, tz) > due_at:
        out.append(day)
        day -= timedelta(days=1)
    return sorted(out)


def late_backup_days(target: CosTarget, due_at: datetime, run_after: datetime, tz: tzinfo) -> tuple[datetime, list[date]]:
    """(when the backups holding the subject are gone, the days whose backups to purge now)."""
    # Backups of days up to the run's day may hold the subject; later ones do not.
    last_day = local_day(run_after, tz)
    days = backup_days_to_purge(target, last_day, due_at, tz)
    first_kept = (days[0] if days else last_day + timedelta(days=1)) - timedelta(days=1)
    return backup_expiry(target, first_kept, tz), days


def late_backups(target: CosTarget, tenant: str, days: Sequence[date], tz: tzinfo) -> ExpiredSelection | None:
    """The backups of ``days`` (those that would outlive the due date), as a selection of whole day units."""
    assert target.prefix is not None
    if not days:
        return None
    units = tuple(target.prefix.render(tenant=tenant, date=d) for d in days)
    return ExpiredSelection(before=start_of_day(max(days) + timedelta(days=1), tz), tenant=tenant, units=units)


def in_plan_order(specs: Sequence[StepSpec], steps: Iterable[Step]) -> list[Step]:
    """``steps`` in the order of the plan ``specs`` (steps the plan no longer has last, by name)."""
    order = {spec.qualified_name: i for i, spec in enumerate(specs)}
    return sorted(steps, key=lambda s: (order.get(s.qualified_name, len(order)), s.qualified_name))
