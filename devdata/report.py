"""What a seeding run wrote: counts per policy target, in total and per tenant (no personal data)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence


@dataclass(frozen=True)
class SeedReport:
    """What was written: counts per policy target (``category.target``) and per other thing
    (``mysql.tenants``, ``redis.other_keys``), in total and per tenant. No personal data."""

    counts: Mapping[str, int]
    by_tenant: Mapping[str, Mapping[str, int]]
    tenants: tuple[str, ...]
    seconds: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, object] = field(default_factory=dict)

    def merged(self, other: SeedReport) -> SeedReport:
        by_tenant: dict[str, dict[str, int]] = {t: dict(c) for t, c in self.by_tenant.items()}
        for tenant, counts in other.by_tenant.items():
            by_tenant.setdefault(tenant, {}).update(counts)
        return SeedReport(
            counts=MappingProxyType({**self.counts, **other.counts}),
            by_tenant=MappingProxyType({t: MappingProxyType(c) for t, c in by_tenant.items()}),
            tenants=self.tenants or other.tenants,
            seconds=MappingProxyType({**self.seconds, **other.seconds}),
            details=MappingProxyType({**self.details, **other.details}),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "tenants": list(self.tenants),
            "counts": dict(self.counts),
            "by_tenant": {t: dict(c) for t, c in self.by_tenant.items()},
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "details": dict(self.details),
        }


def store_report(tally: Mapping[str, Counter[str]], tenants: Sequence[str], store: str, seconds: float,
            details: Mapping[str, object] | None = None) -> SeedReport:
    totals: Counter[str] = Counter()
    for counts in tally.values():
        totals.update(counts)
    return SeedReport(
        counts=MappingProxyType(dict(totals)),
        by_tenant=MappingProxyType({t: MappingProxyType(dict(tally.get(t, Counter()))) for t in tenants}),
        tenants=tuple(tenants),
        seconds=MappingProxyType({store: seconds}),
        details=MappingProxyType(dict(details or {})),
    )
