"""Which selections of one pass over a Redis target each key belongs to. Pure: no I/O.

One ``SCAN`` serves every selection of a target in a run (terminated tenants, deleted
subjects). Each key it returns is parsed once with the target's key template and its tenant
(and subject) ids are looked up in dicts of the wanted values, so the cost of a pass grows
with the keys scanned, not with keys x selections. The scan is narrowed with the longest
literal prefix every selected key shares: the tenant's and subject's prefix when there is
one selection (``cc:12:agent:a1:*``), the template's literal start otherwise (``cc:*``).

The glob only narrows; the parse decides. A key the glob matches but the template does not
parse, or whose ids are not wanted, belongs to no selection, so tenant ``12`` never takes
``cc:123:...`` and agent ``a1`` never takes ``a10``.
"""

from __future__ import annotations

import os
import re
from typing import Any, Sequence

from include.retention.identifiers import Template
from include.retention.results import UnsupportedSelection
from include.retention.selections import ExpiredSelection, Selection, SubjectSelection, TenantSelection

# Redis glob metacharacters (stringmatchlen): * ? [ ] and the escape character itself.
_GLOB_SPECIAL = frozenset("*?[]\\")


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself in ``SCAN MATCH``."""
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


class _Lookup:
    """The wanted ids in one encoding (bytes as SCAN returns them, or str), with the compiled template."""

    def __init__(self, pattern: str, whole: dict[str, tuple[int, ...]],
                 subjects: dict[str, dict[tuple[str, str], tuple[int, ...]]], *, as_bytes: bool) -> None:
        def enc(value: str) -> Any:
            return value.encode("ascii") if as_bytes else value

        self.match = re.compile(pattern.encode("ascii") if as_bytes else pattern).match
        self.whole = {enc(t): owners for t, owners in whole.items()}
        self.subjects = [(name, {(enc(t), enc(s)): owners for (t, s), owners in ids.items()})
                         for name, ids in subjects.items()]
        self.with_subjects = {enc(t) for ids in subjects.values() for t, _s in ids}


class KeyClaims:
    """The selections of one pass over a target's keys, and which of them each key belongs to.

    Validates every selection (ids, subject placeholders) before any I/O. The template's
    regex is compiled once and matched on the raw bytes SCAN returns (``Template.regex``
    rebuilds its pattern on every call; the identifier patterns are ASCII-only, so the bytes
    regex accepts exactly the keys the text regex accepts). Its repr holds no personal data.

    :param template: the target's key template (no date: Redis keys carry none).
    :param selections: tenant and subject selections, in the order a purge would take them.
    :param target_name: for error messages.
    """

    def __init__(self, template: Template, selections: Sequence[Selection], target_name: str) -> None:
        if template.date_placeholder is not None:
            raise UnsupportedSelection(f"Redis key template {template.text!r} must not carry a date")
        whole: dict[str, list[int]] = {}
        subjects: dict[str, dict[tuple[str, str], list[int]]] = {}
        prefixes: list[str] = []
        scopes: list[str] = []
        for index, selection in enumerate(selections):
            if isinstance(selection, ExpiredSelection):
                raise UnsupportedSelection(
                    f"{target_name}: Redis keys carry no date, so nothing expires by age; "
                    "they go with a termination or a deletion request"
                )
            if isinstance(selection, TenantSelection):
                prefixes.append(template.prefix(tenant=selection.tenant))  # validates the tenant id
                whole.setdefault(selection.tenant, []).append(index)
                scopes.append(f"tenant {selection.tenant}")
            elif isinstance(selection, SubjectSelection):
                subject_type, tenant = selection.subject_type, selection.tenant
                if subject_type not in template.subject_types:
                    raise UnsupportedSelection(
                        f"{target_name}: key template {template.text!r} has no {{{subject_type}}} placeholder"
                    )
                prefixes.append(template.prefix(tenant=tenant, **{subject_type: selection.subject_id}))
                subjects.setdefault(subject_type, {}).setdefault((tenant, selection.subject_id), []).append(index)
                scopes.append(f"one {subject_type} of tenant {tenant}")
            else:
                raise UnsupportedSelection(f"unknown selection {type(selection).__name__}")
        self.size = len(selections)
        self.scopes = tuple(scopes)  # for log lines: "tenant 12", "one agent of tenant 12"
        # Every selected key starts with its selection's prefix, so with what all of them share.
        self.pattern = glob_escape(os.path.commonprefix(prefixes) if prefixes else template.prefix()) + "*"
        frozen_whole = {t: tuple(owners) for t, owners in whole.items()}
        frozen_subjects = {name: {k: tuple(owners) for k, owners in ids.items()} for name, ids in subjects.items()}
        text = template.regex.pattern
        self._lookups = {bytes: _Lookup(text, frozen_whole, frozen_subjects, as_bytes=True),
                         str: _Lookup(text, frozen_whole, frozen_subjects, as_bytes=False)}

    def __repr__(self) -> str:
        return f"KeyClaims({self.size} selection(s))"

    def owners(self, key: bytes | str) -> tuple[int, ...]:
        """Indices of the selections that want ``key``, in order; () when it is none of theirs."""
        lookup = self._lookups[type(key)]
        found = lookup.match(key)  # type: ignore[arg-type]
        if found is None:
            return ()
        tenant = found.group("tenant")
        owners = lookup.whole.get(tenant, ())
        if tenant in lookup.with_subjects:
            for name, ids in lookup.subjects:
                owners = owners + ids.get((tenant, found.group(name)), ())
        return owners

    def count_into(self, keys: Sequence[Any], counts: list[int]) -> None:
        """Add one SCAN reply to each selection's count (a key two selections want counts in both)."""
        owners_of = self.owners
        for key in keys:
            for index in owners_of(key):
                counts[index] += 1

    def claim(self, keys: Sequence[Any]) -> list[tuple[int, Any]]:
        """(selection index, key) for each key of one SCAN reply some selection wants, raw as the
        server sent it. A key two selections want is claimed by the first, as purging them one
        after another would do (the second finds it gone)."""
        owners_of = self.owners
        claimed = []
        for key in keys:
            owners = owners_of(key)
            if owners:
                claimed.append((min(owners), key))
        return claimed

    def count_claimed_into(self, keys: Sequence[Any], counts: list[int]) -> None:
        """Add one SCAN reply to each selection's count of the keys it claims (each key once)."""
        for index, _key in self.claim(keys):
            counts[index] += 1
