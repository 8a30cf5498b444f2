"""What a COS purge lists and how it re-checks each key: key parsing and scans. Pure, no I/O.

A selection becomes :class:`Scan` values: a listing prefix rendered by the target's template
from validated ids, the sorted starts of the selected ranges (whole day prefixes, or explicit
keys), and the template re-check every listed key must pass before it is deleted, so tenant
``12`` never touches ``recordings/123/...`` and the agent backups of a day never touch its
call-data backups.
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Callable, Iterable, Sequence

from include.retention.identifiers import Template
from include.retention.policy import CosTarget
from include.retention.results import UnsupportedSelection
from include.retention.selections import ExpiredSelection, Selection, SubjectSelection, TenantSelection

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- key parsing


@functools.lru_cache(maxsize=4096)
def _strpdate(text: str, fmt: str) -> date | None:
    try:
        return datetime.strptime(text, fmt).date()
    except ValueError:
        return None


class KeyParser:
    """``template.parse`` with the regex compiled once; also returns the key's unit.

    ``Template.regex`` rebuilds its pattern on every call; a purge parses every listed key.
    For a key, ``parse(key)`` is exactly the groups of ``regex.match(key)`` with the date
    parsed by ``strptime`` (None when it is not a real date), and the unit (the fully
    rendered template the key lies under) is ``key[:match.end()]``.
    """

    def __init__(self, template: Template) -> None:
        self.template = template
        self._match = template.regex.match
        self._dated = template.date_placeholder
        self._format = template.date_format or ""

    def __call__(self, key: str) -> tuple[str, dict[str, object]] | None:
        found = self._match(key)
        if found is None:
            return None
        values: dict[str, object] = dict(found.groupdict())
        if self._dated:
            parsed = _strpdate(str(values[self._dated]), self._format)
            if parsed is None:
                return None
            values[self._dated] = parsed
        return key[: found.end()], values


# --------------------------------------------------------------------------- scans


@dataclass(frozen=True)
class Scan:
    """What to list and how to re-check each key. No personal data in its repr.

    :param prefix: the listing prefix (rendered from validated ids).
    :param starts: sorted starts of the selected ranges; the listing visits only these.
    :param exact: the ranges are single keys (explicit keys) rather than prefixes.
    :param accept: the template re-check of one key.
    """

    prefix: str
    starts: tuple[str, ...]
    exact: bool
    accept: Callable[[str], bool]
    scope: str

    def __repr__(self) -> str:
        return f"Scan(scope={self.scope!r}, ranges={len(self.starts)})"

    def range_of(self, key: str) -> int | None:
        """Index of the selected range holding ``key``, or None."""
        index = bisect.bisect_right(self.starts, key) - 1
        if index < 0:
            return None
        start = self.starts[index]
        if key == start or (not self.exact and key.startswith(start)):
            return index
        return None

    def past_end(self, key: str) -> bool:
        return key > self.starts[-1] and self.range_of(key) is None

    def next_start(self, key: str) -> str | None:
        """The first selected range starting after ``key``."""
        index = bisect.bisect_right(self.starts, key)
        return self.starts[index] if index < len(self.starts) else None


def unit_bounds(values: dict[str, object], template: Template, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of the day (or month) a unit stands for, in the store's zone."""
    placeholder = template.date_placeholder
    day = values[placeholder]  # type: ignore[index]
    assert isinstance(day, date)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    if placeholder == "month":
        first = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        return start, datetime(first.year, first.month, 1, tzinfo=tz)
    following = day + timedelta(days=1)
    return start, datetime(following.year, following.month, following.day, tzinfo=tz)


# --------------------------------------------------------------------------- selection -> scans


def prefix_template(target: CosTarget) -> Template:
    """The target's key prefix template; UnsupportedSelection when it has none."""
    if target.prefix is None:
        raise UnsupportedSelection(f"{target.qualified_name} has no prefix template")
    return target.prefix


def selection_scans(target: CosTarget, selection: Selection, tz: tzinfo) -> list[Scan]:
    """The scans of a selection: one (none for expired units of excluded tenants only).

    :param tz: the store's zone: day prefixes are dates on its calendar.
    """
    if isinstance(selection, ExpiredSelection):
        return _expired_scans(target, selection, tz)
    return [_scan(target, selection)]


def _scan(target: CosTarget, selection: Selection) -> Scan:
    template = prefix_template(target)
    parse = KeyParser(template)
    if isinstance(selection, TenantSelection):
        tenant = selection.tenant
        prefix = template.prefix(tenant=tenant)  # validates the tenant id

        def accept_tenant(key: str) -> bool:
            parsed = parse(key)
            return parsed is not None and parsed[1].get("tenant") == tenant

        return Scan(prefix, (prefix,), False, accept_tenant, f"tenant {tenant}")
    if isinstance(selection, SubjectSelection):
        subject_type, tenant = selection.subject_type, selection.tenant
        if subject_type not in template.subject_types:
            via = f" (its keys come from {target.subject_keys_from.target}: use purge_keys)" if (
                target.subject_keys_from) else ""
            raise UnsupportedSelection(
                f"{target.qualified_name}: object keys under {template.text!r} carry no {subject_type}{via}"
            )
        subject_id = selection.subject_id
        prefix = template.prefix(tenant=tenant, **{subject_type: subject_id})  # validates both

        def accept_subject(key: str) -> bool:
            parsed = parse(key)
            if parsed is None:
                return False
            return parsed[1].get("tenant") == tenant and parsed[1].get(subject_type) == subject_id

        return Scan(prefix, (prefix,), False, accept_subject, f"one {subject_type} of tenant {tenant}")
    raise UnsupportedSelection(f"unknown selection {type(selection).__name__}")


def _expired_scans(target: CosTarget, selection: ExpiredSelection, tz: tzinfo) -> list[Scan]:
    """One skip-scan over exactly the selection's units (of one tenant or of many), each unit checked."""
    template = prefix_template(target)
    if template.date_placeholder is None:
        raise UnsupportedSelection(
            f"{target.qualified_name}: {template.text!r} has no date, so nothing expires by age"
        )
    kept = set(selection.exclude_tenants) | {s[0] for s in selection.exclude_subjects}
    by_tenant: dict[str, set[str]] = {}
    for unit in selection.units:
        values = template.parse(unit, whole=True)
        if values is None:
            raise ValueError(
                f"{target.qualified_name}: unit {unit!r:.120} is not a prefix rendered by {template.text!r}"
            )
        tenant = str(values["tenant"])
        if selection.tenant is not None and tenant != selection.tenant:
            raise ValueError(f"{target.qualified_name}: unit {unit!r} is not of tenant {selection.tenant}")
        _, end = unit_bounds(values, template, tz)
        if end > selection.before:
            raise ValueError(
                f"{target.qualified_name}: unit {unit!r} ends at {end.isoformat()}, after the cut-off "
                f"{selection.before.isoformat()}; only whole units before it may be deleted"
            )
        if tenant in kept:
            log.info("Keeping unit %s of %s: tenant %s is excluded", unit, target.qualified_name, tenant)
            continue
        by_tenant.setdefault(tenant, set()).add(unit)
    if not by_tenant:
        return []
    parse = KeyParser(template)
    owner = {unit: tenant for tenant, units in by_tenant.items() for unit in units}

    def accept_unit(key: str) -> bool:
        parsed = parse(key)
        return parsed is not None and owner.get(parsed[0]) == parsed[1].get("tenant")

    # One skip-scan for all the tenants: a tenant with a unit or two costs no request of its own.
    if len(by_tenant) == 1:
        (tenant,) = by_tenant
        prefix, scope = template.prefix(tenant=tenant), f"{len(owner)} unit(s) of tenant {tenant}"
    else:
        prefix, scope = template.prefix(), f"{len(owner)} unit(s) of {len(by_tenant)} tenants"
    return [Scan(prefix, tuple(sorted(owner)), False, accept_unit, scope)]


def merged_scan(scans: Sequence[Scan]) -> tuple[Scan, dict[str, list[int]]] | None:
    """One skip-scan visiting the ranges of all these scans, and which of them owns each start.

    None when two ranges nest (a tenant prefix holding a day prefix): a key would then lie in
    ranges the skip-scan cannot tell apart, so each scan is read on its own. A key the merged
    scan yields is counted for scan ``i`` only if ``scans[i].accept`` takes it.
    """
    if any(scan.exact for scan in scans):
        return None
    owners: dict[str, list[int]] = {}
    for index, scan in enumerate(scans):
        for start in scan.starts:
            owners.setdefault(start, []).append(index)
    starts = tuple(sorted(owners))
    if not starts or any(b.startswith(a) for a, b in zip(starts, starts[1:])):
        return None
    prefix = os.path.commonprefix([scan.prefix for scan in scans])

    def accept_any(key: str) -> bool:
        start = starts[bisect.bisect_right(starts, key) - 1]
        return any(scans[i].accept(key) for i in owners[start])

    return Scan(prefix, starts, False, accept_any, f"{len(scans)} selections"), owners


# --------------------------------------------------------------------------- finding units


def tenant_level(template: Template) -> bool:
    """Whether every name of the template starts with its head and then ``{tenant}/``: then a
    listing of the head can be cut into tenants (``head`` + tenant id + ``/``)."""
    return template.text.startswith(template.prefix() + "{tenant}/")


def dates_in_key_order(template: Template) -> bool:
    """Whether, under one tenant, names sort as their dates: ``{tenant}/`` is followed by
    literals and then the date, whose format runs %Y, %m, %d (zero-padded, fixed width).

    Then a tenant's listing may stop at its first unit past a cut-off: every later key is as
    late or later.
    """
    if not tenant_level(template) or template.date_placeholder is None:
        return False
    after = template.text[len(template.prefix()) + len("{tenant}/"):]
    following = re.search(r"\{([a-z_]+)\}", after)
    if following is None or following.group(1) != template.date_placeholder:
        return False
    directives = re.findall(r"%.", template.date_format or "")
    return bool(directives) and directives == ["%Y", "%m", "%d"][: len(directives)]


def tenant_group(key: str, head: str) -> str | None:
    """``head`` + the key's next path segment + ``/`` (a tenant's prefix), or None."""
    end = key.find("/", len(head))
    return key[: end + 1] if end >= 0 else None


def past(prefix: str) -> str:
    """A ``StartAfter`` that skips every key starting with ``prefix`` (which ends with ``/``).

    ``/`` is followed by ``0`` in key order, so the listing resumes at ``prefix[:-1] + "0"``
    and beyond; only the key that is exactly that string is skipped, and it lies under no
    unit (a unit continues with ``/`` where that key has ``0``).
    """
    assert prefix.endswith("/")
    return prefix[:-1] + "0"


def keys_scan(target: CosTarget, tenant: str, keys: Iterable[str]) -> Scan:
    """A scan of explicit keys; every key must lie under the template, for ``tenant``."""
    template = prefix_template(target)
    prefix = template.prefix(tenant=tenant)  # validates the tenant id
    parse = KeyParser(template)
    wanted: set[str] = set()
    for index, key in enumerate(keys):
        parsed = parse(key) if isinstance(key, str) else None
        # the key is not echoed: it came from a database column and is not ours to print
        if parsed is None or parsed[1].get("tenant") != tenant or not key.startswith(prefix):
            raise ValueError(
                f"{target.qualified_name}: key #{index} is not an object key under {template.text!r} "
                f"for tenant {tenant}; nothing was deleted"
            )
        wanted.add(key)
    scope = f"{len(wanted)} key(s) of tenant {tenant}"
    return Scan(prefix, tuple(sorted(wanted)), True, wanted.__contains__, scope)
