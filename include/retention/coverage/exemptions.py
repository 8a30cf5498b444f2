"""The checked-in exemptions: items the policy need not name, each with a reason and an owner.

``include/retention/coverage_exemptions.yaml`` (``RETENTION_COVERAGE_EXEMPTIONS_PATH`` points
elsewhere)::

    exemptions:
      - items: [mysql:table:purge_audit, mysql:table:request_events]
        reason: the retention ledger's own tables; they hold no personal data
        owner: data-retention

An item is ``<store>:<kind>:<name>`` exactly as the coverage check names it (the dashboard and
the CLI show it), or a pattern with ``*`` and ``?``. A table's exemption covers its columns.
A load error names the file, the entry and the fix.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from include.retention.coverage.items import KINDS

DEFAULT_EXEMPTIONS_PATH = Path(__file__).resolve().parent.parent / "coverage_exemptions.yaml"
EXEMPTIONS_PATH_ENV = "RETENTION_COVERAGE_EXEMPTIONS_PATH"
_ITEM = re.compile(r"^(?P<store>[a-z]+):(?P<kind>[a-z_]+):(?P<name>.{1,255})$")


class ExemptionsError(ValueError):
    """A problem in the exemptions file, naming the file, the entry and the fix."""

    def __init__(self, path: Path | str, entry: str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {entry}: {problem}. Fix: {fix}")


@dataclass(frozen=True)
class Exemption:
    pattern: str
    reason: str
    owner: str

    def matches(self, item_id: str) -> bool:
        return fnmatch.fnmatchcase(item_id, self.pattern)


@dataclass(frozen=True)
class Exemptions:
    entries: tuple[Exemption, ...] = ()
    path: str = "<none>"

    def find(self, item_id: str) -> Exemption | None:
        return next((e for e in self.entries if e.matches(item_id)), None)

    def without(self, pattern: str) -> Exemptions:
        return Exemptions(tuple(e for e in self.entries if e.pattern != pattern), self.path)

    def plus(self, pattern: str, reason: str, owner: str) -> Exemptions:
        return Exemptions(self.entries + (Exemption(pattern, reason, owner),), self.path)


def exemptions_path() -> Path:
    return Path(os.environ.get(EXEMPTIONS_PATH_ENV) or DEFAULT_EXEMPTIONS_PATH)


def load_exemptions(path: Path | str | None = None) -> Exemptions:
    """The exemptions file, validated."""
    import yaml

    where = Path(path) if path is not None else exemptions_path()
    try:
        raw = yaml.safe_load(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExemptionsError(where, "file", "not found", f"create it or point ${EXEMPTIONS_PATH_ENV} at one") from None
    return parse_exemptions(raw, where)


def parse_exemptions(raw: Any, path: Path | str = "<exemptions>") -> Exemptions:
    if raw is None:
        return Exemptions((), str(path))
    if not isinstance(raw, dict) or set(raw) - {"exemptions"}:
        raise ExemptionsError(path, "top level", "must be a mapping with the one key 'exemptions'",
                              "write 'exemptions:' followed by a list of entries")
    entries = raw.get("exemptions") or []
    if not isinstance(entries, list):
        raise ExemptionsError(path, "exemptions", "must be a list", "start each entry with '- items: [...]'")
    out: list[Exemption] = []
    for number, entry in enumerate(entries, 1):
        where = f"exemptions[{number}]"
        if not isinstance(entry, dict) or set(entry) != {"items", "reason", "owner"}:
            raise ExemptionsError(path, where, "needs exactly the keys items, reason and owner",
                                  "give the items it exempts, why, and who answers for it")
        items, reason, owner = entry["items"], entry["reason"], entry["owner"]
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not items:
            raise ExemptionsError(path, where, "items must be a non-empty list", "list one item id or more")
        for text, what in ((reason, "reason"), (owner, "owner")):
            if not isinstance(text, str) or not text.strip() or len(text) > 500:
                raise ExemptionsError(path, where, f"{what} must be a non-empty text (at most 500 characters)",
                                      f"say the {what} in words")
        for item in items:
            _check_item(path, where, item)
            out.append(Exemption(str(item), reason.strip(), owner.strip()))
    return Exemptions(tuple(out), str(path))


def _check_item(path: Path | str, where: str, item: Any) -> None:
    match = _ITEM.match(item) if isinstance(item, str) else None
    if match is None:
        raise ExemptionsError(path, where, f"item {item!r:.80} is not <store>:<kind>:<name>",
                              "copy the item id the coverage check shows, e.g. mysql:table:purge_audit")
    store, kind = match["store"], match["kind"]
    if store not in KINDS or kind not in KINDS[store]:
        kinds = "; ".join(f"{s}: {', '.join(k)}" for s, k in KINDS.items())
        raise ExemptionsError(path, where, f"item {item!r:.80} names an unknown store or kind",
                              f"use one of {kinds}")
    if match["name"].strip("*?") == "":
        raise ExemptionsError(path, where, f"item {item!r:.80} exempts everything of its kind",
                              "name the items; an exemption of a whole store hides every new one")


def table_exemption(exemptions: Exemptions, table: str) -> Exemption | None:
    """The exemption of a MySQL table, which also exempts its columns."""
    return exemptions.find(f"mysql:table:{table}")


def patterns(exemptions: Exemptions) -> Sequence[str]:
    return [e.pattern for e in exemptions.entries]
