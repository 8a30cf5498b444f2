"""The three Elasticsearch layouts a policy target may name, validated when the policy loads.

1. ``per_tenant`` (the default): dated indices per tenant, ``index: 'cc-logs-{tenant}-{month}'``.
   A termination drops the tenant's indices; expiry drops whole indices.
2. ``shared``: dated indices shared by all tenants, ``index: 'cc-logs-{month}'``, with the
   tenant in ``tenant_field``. Expiry drops an index only when every document in it has
   expired (no tenant on extended retention or hold left in it); otherwise it thins the index
   by query. Terminations and subject deletions delete by query.
3. ``data_stream``: ``data_stream: 'cc-logs'``. Expiry drops whole backing indices whose
   newest document is before the cut-off, by name (the write index after a rollover), and
   thins the rest by query; terminations and deletions delete by query on the stream.

This module sits below ``policy`` (which imports it): it knows nothing of the policy's
dataclasses and reports problems through the parser it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Any, Callable, Mapping, Protocol

from include.retention.identifiers import IdentifierFormat, Template

LAYOUTS = ("per_tenant", "shared", "data_stream")
_SHARED = re.compile(r"^([a-z0-9][a-z0-9._-]*)\{(month|date)\}([a-z0-9._-]*)$")
#: ES index and data stream names: lower case, no wildcard or list characters, not hidden.
_STREAM = re.compile(r"^[a-z0-9][a-z0-9._-]{0,200}$")
_DIRECTIVES = {"%Y": r"\d{4}", "%m": r"\d{2}", "%d": r"\d{2}"}


@dataclass(frozen=True)
class SharedIndexName:
    """A dated index name shared by every tenant, such as ``cc-logs-{month}`` (``%Y.%m``)."""

    text: str
    date_format: str

    def __post_init__(self) -> None:
        match = _SHARED.fullmatch(self.text)
        if not match:
            raise ValueError(
                f"shared index {self.text!r} must be lower-case letters, digits and . _ - around one "
                "{month} or {date}, and start with a letter or digit"
            )
        if set(re.findall(r"%.", self.date_format)) - set(_DIRECTIVES) or "%Y" not in self.date_format:
            raise ValueError(f"date format {self.date_format!r} must hold %Y and may only use %Y, %m and %d")
        if match.group(2) == "date" and "%d" not in self.date_format:
            raise ValueError("{date} needs a day (%d) in its format")

    @property
    def placeholder(self) -> str:
        return _SHARED.fullmatch(self.text).group(2)  # type: ignore[union-attr]

    @property
    def prefix(self) -> str:
        """The literal start of every name: the listing pattern is this plus ``*``."""
        return _SHARED.fullmatch(self.text).group(1)  # type: ignore[union-attr]

    @property
    def regex(self) -> re.Pattern[str]:
        match = _SHARED.fullmatch(self.text)
        assert match is not None
        body = re.escape(self.date_format)
        for directive, rx in _DIRECTIVES.items():
            body = body.replace(re.escape(directive), rx).replace(directive, rx)
        return re.compile(f"^{re.escape(match.group(1))}(?P<d>{body}){re.escape(match.group(3))}$")

    def parse(self, name: str) -> date | None:
        """The day (first of the month for ``{month}``) a whole index name stands for, or None."""
        match = self.regex.fullmatch(name)
        if not match:
            return None
        try:
            day = datetime.strptime(match.group("d"), self.date_format).date()
        except ValueError:
            return None
        return day.replace(day=1) if self.placeholder == "month" else day

    def render(self, day: date) -> str:
        return self.text.replace("{" + self.placeholder + "}", day.strftime(self.date_format))

    def bounds(self, day: date, tz: tzinfo) -> tuple[datetime, datetime]:
        """[start, end) of the month or day an index stands for, on the policy calendar."""
        if self.placeholder == "month":
            first = day.replace(day=1)
            nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        else:
            first, nxt = day, day + timedelta(days=1)
        return datetime(first.year, first.month, first.day, tzinfo=tz), datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)


@dataclass(frozen=True)
class ElasticsearchLayout:
    """How a target's documents are laid out: per-tenant indices, shared dated indices, or a data stream.

    :param formats: the tenant and subject id formats (a per-tenant template carries its own).
    """

    kind: str = "per_tenant"
    shared_index: SharedIndexName | None = None
    data_stream: str | None = None
    formats: Mapping[str, IdentifierFormat] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def shared(self) -> bool:
        """Tenants share indices: their documents are told apart by the tenant field only."""
        return self.kind != "per_tenant"

    def names(self, index: Template | None) -> str:
        """What names the data, as written in the policy."""
        if self.shared_index is not None:
            return self.shared_index.text
        if self.data_stream is not None:
            return f"data stream {self.data_stream}"
        return index.text if index is not None else ""

    def where(self, index: Template | None, tenant: str, tenant_field: str) -> str:
        """Where a tenant's documents are, for a request's step (no personal data)."""
        if self.shared:
            return f"{self.names(index)} (documents with {tenant_field} = {tenant})"
        return index.text.replace("{tenant}", tenant) if index is not None else ""


class _Parser(Protocol):
    """The policy parser's helpers this module uses (``policy._Parser``)."""

    def fail(self, rule: str, problem: str, fix: str) -> Exception: ...
    def only(self, value: dict[str, Any], rule: str, allowed: set[str]) -> None: ...
    def field_name(self, value: Any, rule: str, what: str) -> str: ...
    def template(self, raw: Any, rule: str, fields: dict[str, IdentifierFormat], date_format: str | None) -> Template: ...


ES_FIELDS = {"layout", "index", "data_stream", "month_format", "tenant_field", "time_field", "subject_fields"}


def elasticsearch_target_fields(
    p: _Parser,
    doc: dict[str, Any],
    rule: str,
    fields: dict[str, IdentifierFormat],
    subject_fields: Callable[[], dict[str, str]],
) -> dict[str, Any]:
    """The Elasticsearch-specific fields of a target (``ElasticsearchTarget``'s keyword arguments)."""
    kind = doc.get("layout", "per_tenant")
    if kind not in LAYOUTS:
        raise p.fail(f"{rule}.layout", f"unknown layout {kind!r:.40}", f"use one of {', '.join(LAYOUTS)}")
    formats = MappingProxyType(dict(fields))
    out: dict[str, Any] = {
        "tenant_field": p.field_name(doc.get("tenant_field", "tenant_id"), f"{rule}.tenant_field", "tenant field"),
        "time_field": p.field_name(doc.get("time_field", "@timestamp"), f"{rule}.time_field", "time field"),
        "subject_fields": MappingProxyType(subject_fields()),
    }
    if kind == "per_tenant":
        if "data_stream" in doc:
            raise p.fail(f"{rule}.data_stream", "a per-tenant layout names indices, not a data stream",
                         "remove data_stream, or set layout: data_stream")
        index = p.template(doc.get("index"), f"{rule}.index", fields, doc.get("month_format"))
        if index.text != index.text.lower():
            raise p.fail(f"{rule}.index", "index names must be lower case", "write the template in lower case")
        return {**out, "index": index, "layout": ElasticsearchLayout(formats=formats)}
    if "tenant_field" not in doc:
        raise p.fail(f"{rule}.tenant_field", f"a {kind} layout keeps tenants apart by a field only",
                     "name the keyword field that holds the tenant id (tenant_field: tenant_id)")
    if kind == "shared":
        if "data_stream" in doc:
            raise p.fail(f"{rule}.data_stream", "a shared layout names dated indices", "remove data_stream")
        try:
            shared = SharedIndexName(str(doc.get("index")), str(doc.get("month_format") or ""))
        except ValueError as exc:
            raise p.fail(f"{rule}.index", str(exc), "write it as 'cc-logs-{month}' with month_format: '%Y.%m', "
                         "without {tenant}: tenants share these indices") from None
        return {**out, "index": None, "layout": ElasticsearchLayout(kind, shared_index=shared, formats=formats)}
    if "index" in doc or "month_format" in doc:
        raise p.fail(f"{rule}.index", "a data stream names its backing indices itself",
                     "remove index and month_format; give data_stream: <name>")
    stream = doc.get("data_stream")
    if not isinstance(stream, str) or not _STREAM.fullmatch(stream) or stream.startswith(".ds-"):
        raise p.fail(f"{rule}.data_stream", f"data stream name {stream!r:.60} is missing or unusable",
                     "give the stream's exact name in lower case (letters, digits, . _ -), no wildcard")
    if out["time_field"] != "@timestamp":
        raise p.fail(f"{rule}.time_field", "a data stream's documents are dated by @timestamp",
                     "remove time_field or set it to '@timestamp'")
    return {**out, "index": None, "layout": ElasticsearchLayout(kind, data_stream=stream, formats=formats)}
