"""What the coverage check trades in: items, their findings, name shapes and value counts. Pure.

An *item* is one thing a store holds that the policy may or may not name: a MySQL table or
column, a Redis key family, a top-level COS prefix (or object), an Elasticsearch index family,
alias or data stream. Names are *scrubbed* before they become an item: a segment that looks
like a phone number or an e-mail address is replaced by ``{phone}`` / ``{email}``, and in key
and index shapes every segment holding a digit becomes ``*``, so that no item name carries a
subject's id. Value samples are reduced to counts at once (:class:`ValueCounts`); the values
themselves never leave the function that read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

STATUSES = ("covered", "exempt", "unknown")
KINDS = {
    "mysql": ("table", "column"),
    "redis": ("keys",),
    "cos": ("prefix", "object"),
    "elasticsearch": ("index", "alias", "data_stream"),
}
#: Words in a name that suggest personal data (issue 16).
PERSONAL_WORDS = ("phone", "number", "email", "name", "caller", "callee", "msisdn")

#: E.164: a '+', then 7 to 15 digits, the first not 0. A number stored without its '+' is not
#: counted: bare digit runs are mostly ids (tenant ids are 7 digits long).
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}")
_E164_INSIDE = re.compile(r"\+[1-9][0-9]{6,14}(?![0-9])")
_EMAIL_INSIDE = re.compile(EMAIL.pattern)
_DIGIT = re.compile(r"[0-9]")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
MAX_NAME = 255
MAX_STRING_SAMPLED = 4096  # characters of one sampled value looked at


def item_id(store: str, kind: str, name: str) -> str:
    return f"{store}:{kind}:{name}"


def scrub_name(name: str) -> str:
    """``name`` with anything shaped like a phone number or an e-mail address replaced."""
    out = _EMAIL_INSIDE.sub("{email}", name)
    out = _E164_INSIDE.sub("{phone}", out)
    return out[:MAX_NAME]


def shape_segment(segment: str) -> str:
    """One segment of a key or index name as its shape: ids (anything with a digit, an '@' or a
    '+', or longer than 40 characters) become ``*``."""
    if not segment:
        return segment
    if _DIGIT.search(segment) or "@" in segment or "+" in segment or len(segment) > 40:
        return "*"
    return segment


def redis_family(key: str, depth: int = 3) -> str:
    """A Redis key's family: its first ``depth`` ':'-segments as shapes, then ``:*`` if it goes on.

    ``cc:1600123:queue:vip`` -> ``cc:*:queue:*``; ``session:9f2c...`` -> ``session:*``.
    """
    parts = key.split(":")
    head = [shape_segment(p) for p in parts[:depth]]
    return ":".join(head) + (":*" if len(parts) > depth else "")


def index_shape(name: str) -> str:
    """An index (alias, data stream) name's family: digit runs collapse to ``*``, as do id-like parts.

    ``crm-contacts-1600123`` -> ``crm-contacts-*``; ``cc-logs-16001-2026.11`` -> ``cc-logs-*-*.*``.
    """
    parts = re.split(r"([-_.])", name)
    return "".join(p if p in "-_." else shape_segment(p) for p in parts)[:MAX_NAME]


def name_flags(name: str) -> tuple[str, ...]:
    """The personal-data words found in a name (tokens split at non-letters and camelCase)."""
    tokens = [t for t in re.split(r"[^a-z0-9]+", _CAMEL.sub("_", name).lower()) if t]
    return tuple(w for w in PERSONAL_WORDS if any(w in t for t in tokens))


@dataclass
class ValueCounts:
    """How many sampled values there were and how many look like a phone number or an e-mail.

    Mutable while one item is sampled; only the three counts are ever kept.
    """

    sampled: int = 0
    e164: int = 0
    email: int = 0

    def add(self, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, (bytes, bytearray, memoryview)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                self.sampled += 1  # binary: looked at, matches nothing
                return
        text = str(value).strip()[:MAX_STRING_SAMPLED]
        self.sampled += 1
        if E164.fullmatch(text):
            self.e164 += 1
        elif EMAIL.fullmatch(text):
            self.email += 1

    def add_all(self, values: Iterable[Any]) -> None:
        for value in values:
            self.add(value)

    def add_leaves(self, document: Any, fields: set[str] | None = None, depth: int = 0) -> None:
        """Every leaf value of a JSON-like document (and, into ``fields``, its field names)."""
        if depth > 20:
            return
        if isinstance(document, Mapping):
            for key, value in document.items():
                if fields is not None and len(fields) < 200:
                    fields.add(scrub_name(str(key))[:64])  # a field may be named by an id
                self.add_leaves(value, fields, depth + 1)
        elif isinstance(document, (list, tuple)):
            for value in document[:100]:
                self.add_leaves(value, fields, depth + 1)
        else:
            self.add(document)

    def merged(self, other: ValueCounts) -> ValueCounts:
        return ValueCounts(self.sampled + other.sampled, self.e164 + other.e164, self.email + other.email)


@dataclass(frozen=True)
class Item:
    """One thing a store holds, as the inventory saw it (scrubbed name, no values).

    :param members: concrete names it stands for (indices of a family, sampled keys of a family).
    :param covered_by: the policy target(s) that name it, when the store's listing decided that.
    :param counts: the value sample's counts (only for items that were not covered).
    :param flag_names: other names inside it that were checked for personal words (field names).
    """

    store: str
    kind: str
    name: str
    members: int = 1
    covered_by: str | None = None
    counts: ValueCounts = field(default_factory=ValueCounts)
    flag_names: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return item_id(self.store, self.kind, self.name)

    def as_json(self) -> dict[str, Any]:
        return {"store": self.store, "kind": self.kind, "name": self.name, "members": self.members,
                "covered_by": self.covered_by, "sampled": self.counts.sampled, "e164": self.counts.e164,
                "email": self.counts.email, "flag_names": list(self.flag_names)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Item:
        return cls(str(data["store"]), str(data["kind"]), str(data["name"]), int(data.get("members", 1)),
                   data.get("covered_by"), ValueCounts(int(data.get("sampled", 0)), int(data.get("e164", 0)),
                                                       int(data.get("email", 0))),
                   tuple(str(n) for n in data.get("flag_names", ())))


@dataclass(frozen=True)
class Finding:
    """An item, classified: covered (by which target), exempt (why, by whom) or unknown, and its flags."""

    item: Item
    status: str
    covered_by: str | None = None
    reason: str | None = None
    owner: str | None = None
    flags: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def likely_personal(self) -> bool:
        return bool(self.flags) or self.item.counts.e164 > 0 or self.item.counts.email > 0

    def as_json(self) -> dict[str, Any]:
        return {**self.item.as_json(), "id": self.id, "status": self.status, "covered_by": self.covered_by,
                "reason": self.reason, "owner": self.owner, "flags": list(self.flags),
                "likely_personal": self.likely_personal}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        return cls(Item.from_json(data), str(data["status"]), data.get("covered_by"), data.get("reason"),
                   data.get("owner"), tuple(str(f) for f in data.get("flags", ())))
