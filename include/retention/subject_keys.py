"""The object keys a subject's rows point at (its recordings): one look-up for both paths.

A COS target whose keys live in a MySQL column (``subject_keys_from``) cannot be addressed
per subject by a prefix; its keys are read from the subject's rows *before those rows are
deleted*. Every key is checked against the target's template and the subject's tenant, so a
row that points elsewhere stops the purge with a clear error instead of deleting another
tenant's object. Object keys hold a tenant, a date and a call id: no personal data.
"""

from __future__ import annotations

from include.retention.policy import CosTarget, MySqlTarget, Policy
from include.retention.selections import Selection, SubjectSelection
from include.retention.stores.base import ColumnSource


class ForeignObjectKeys(ValueError):
    """A subject's rows point at objects that are not the tenant's under the target's template."""


def key_source(policy: Policy, target: CosTarget) -> MySqlTarget:
    """The MySQL target whose column holds ``target``'s object keys."""
    if target.subject_keys_from is None:
        raise ValueError(f"{target.qualified_name} takes no object keys from a MySQL column")
    source = policy.category(target.category).target(target.subject_keys_from.target)
    assert isinstance(source, MySqlTarget)
    return source


def subject_object_keys(policy: Policy, target: CosTarget, selection: Selection, mysql: ColumnSource) -> list[str]:
    """The distinct object keys the selection's rows point at, sorted; raises
    :class:`ForeignObjectKeys` (before anything is deleted) if one is not the tenant's."""
    source = key_source(policy, target)
    assert target.subject_keys_from is not None and target.prefix is not None
    column, template = target.subject_keys_from.column, target.prefix
    tenant = getattr(selection, "tenant", None)
    keys: set[str] = set()
    foreign = 0
    for value in mysql.fetch_column(source, selection, column):
        key = value.decode() if isinstance(value, bytes) else str(value)
        if not key:
            continue
        values = template.parse(key)
        if values is None or values.get("tenant") != tenant:
            foreign += 1
            continue
        keys.add(key)
    if foreign:
        raise ForeignObjectKeys(
            f"{foreign} key(s) in {source.qualified_name}.{column} of this subject are not objects of tenant "
            f"{tenant} under {template.text}: correct those rows, then retry"
        )
    return sorted(keys)


def held_object_keys(policy: Policy, target: CosTarget, selection: SubjectSelection, mysql: ColumnSource) -> set[str]:
    """The subject's object keys that stay because their rows also name another held subject.

    The difference of its keys with and without the holds, read now: the held rows are never
    purged, so it is the same before and after the subject's rows go.
    """
    if not selection.exclude_subjects:
        return set()
    everything = subject_object_keys(policy, target, selection.without_holds(), mysql)
    return set(everything) - set(subject_object_keys(policy, target, selection, mysql))
