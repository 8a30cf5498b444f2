"""Which policy target names an item, and each item's status and flags. Pure: no I/O.

- **MySQL:** a table is covered when a MySQL target names it; a column when its table's
  target names it (key, tenant, time or subject column, or the column a COS target takes its
  object keys from). Any other column of a covered table is *unknown*: its rows go on expiry
  and termination, but a deletion by subject never looks at it.
- **Redis:** a key is covered when it starts with a Redis target's key template.
- **COS:** a top-level prefix is covered when a COS target's prefix starts with it.
- **Elasticsearch:** an index or data stream is covered when its whole name is a target's
  index template; an alias when every index it points at is covered.

Then: a covered item stays covered; else an exemption (or, for a column, its table's) makes it
exempt; else it is unknown. Flags are the personal words in its name (for a column, the
column's own name) and in the field names its sample saw.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from include.retention.coverage.exemptions import Exemptions, table_exemption
from include.retention.coverage.items import Finding, Item, name_flags
from include.retention.policy import CosTarget, ElasticsearchTarget, MySqlTarget, Policy, RedisTarget, Target


def _joined(targets: Iterable[Target]) -> str:
    return ",".join(sorted({t.qualified_name for t in targets}))


def mysql_tables(policy: Policy) -> dict[str, str]:
    """Table -> the target(s) naming it."""
    found: dict[str, list[Target]] = defaultdict(list)
    for target in policy.targets:
        if isinstance(target, MySqlTarget):
            found[target.table].append(target)
    return {table: _joined(targets) for table, targets in found.items()}


def mysql_columns(policy: Policy) -> dict[tuple[str, str], str]:
    """(table, column) -> the target(s) naming the column."""
    found: dict[tuple[str, str], list[Target]] = defaultdict(list)
    by_name = {t.qualified_name: t for t in policy.targets}
    for target in policy.targets:
        if isinstance(target, MySqlTarget):
            named = {target.key_column, target.tenant_column, target.time_column, *target.subject_columns.values()}
            for column in named:
                if column:
                    found[(target.table, column)].append(target)
        if isinstance(target, CosTarget) and target.subject_keys_from is not None:
            source = by_name.get(f"{target.category}.{target.subject_keys_from.target}") or next(
                (t for t in policy.targets if t.name == target.subject_keys_from.target), None)
            if isinstance(source, MySqlTarget):
                found[(source.table, target.subject_keys_from.column)].append(target)
    return {key: _joined(targets) for key, targets in found.items()}


def redis_target(policy: Policy, key: str) -> RedisTarget | None:
    for target in policy.targets:
        if isinstance(target, RedisTarget) and target.key is not None and target.key.parse(key) is not None:
            return target
    return None


def cos_top_levels(policy: Policy) -> dict[str, str]:
    """Top-level prefix (``recordings/``) -> the COS target(s) under it."""
    found: dict[str, list[Target]] = defaultdict(list)
    for target in policy.targets:
        if isinstance(target, CosTarget) and target.prefix is not None:
            literal = target.prefix.text.split("{", 1)[0]
            top = literal.split("/", 1)[0] + "/" if "/" in literal else literal
            found[top].append(target)
    return {top: _joined(targets) for top, targets in found.items()}


def es_target(policy: Policy, name: str) -> ElasticsearchTarget | None:
    """The target whose index template (or shared index name, or data stream) is ``name``."""
    for target in policy.targets:
        if not isinstance(target, ElasticsearchTarget):
            continue
        if target.index is not None and target.index.parse(name, whole=True) is not None:
            return target
        # the shared and data-stream layouts (a target's ``layout``, where the policy has them)
        layout = getattr(target, "layout", None)
        shared = getattr(layout, "shared_index", None)
        if getattr(layout, "data_stream", None) == name or (shared is not None and shared.parse(name) is not None):
            return target
    return None


def es_group(target: ElasticsearchTarget) -> str:
    """The name a covered index family is reported under: the target's template or stream."""
    if target.index is not None:
        return target.index.text
    layout = getattr(target, "layout", None)
    shared = getattr(layout, "shared_index", None)
    return str(getattr(layout, "data_stream", None) or (shared.text if shared is not None else target.name))


def _flags(item: Item) -> tuple[str, ...]:
    own = item.name.rsplit(".", 1)[-1] if item.kind == "column" else item.name
    words = set(name_flags(own))
    for extra in item.flag_names:
        words.update(name_flags(extra))
    return tuple(sorted(words))


def classify(items: Iterable[Item], exemptions: Exemptions) -> list[Finding]:
    """Each item's finding: covered, exempt or unknown, with its flags."""
    out: list[Finding] = []
    for item in items:
        flags = _flags(item)
        if item.covered_by:
            out.append(Finding(item, "covered", covered_by=item.covered_by, flags=flags))
            continue
        exemption = exemptions.find(item.id)
        if exemption is None and item.store == "mysql" and item.kind == "column":
            exemption = table_exemption(exemptions, item.name.split(".", 1)[0])
        if exemption is not None:
            out.append(Finding(item, "exempt", reason=exemption.reason, owner=exemption.owner, flags=flags))
        else:
            out.append(Finding(item, "unknown", flags=flags))
    return out


def needs_sample(item: Item, exemptions: Exemptions) -> bool:
    """Whether the value sample is worth taking: only for items that are neither covered nor exempt."""
    return classify([item], exemptions)[0].status == "unknown"


def summary(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {"items": 0, "covered": 0, "exempt": 0, "unknown": 0, "likely_personal": 0}
    for finding in findings:
        counts["items"] += 1
        counts[finding.status] += 1
        if finding.status == "unknown" and finding.likely_personal:
            counts["likely_personal"] += 1
    return counts
