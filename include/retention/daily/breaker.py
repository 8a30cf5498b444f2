"""The circuit breaker and the options of one daily run.

A run that would delete more than ``max_share`` of any target fails before deleting
anything (a policy typo, a clock gone wrong); ``allow_large_purge`` with an
``override_reason`` lets it through, and the reason is recorded in the audit.

It also measures each tenant: with many tenants on holds or extended retention, a typo
(6 months written as 1) can wipe most of one tenant's data and still stay under
``max_share`` of the target. So a run that would delete more than ``max_share`` of any one
tenant's records in a target trips it too, once that tenant's planned deletions reach
``tenant_min_records`` (a tenant with a handful of old records is not a policy mistake).
Only deletions by age count here: a termination or a deletion request takes everything of
its tenant or subject by design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

DEFAULT_MAX_SHARE = 0.5
DEFAULT_TENANT_MIN_RECORDS = 1000


class CircuitBreakerTripped(RuntimeError):
    """A run would delete more than it safely should; nothing was deleted."""


@dataclass(frozen=True)
class RunOptions:
    """What an operator chose for one run (the DAG's params)."""

    dry_run: bool = False
    max_share: float = DEFAULT_MAX_SHARE
    allow_large_purge: bool = False
    override_reason: str = ""
    tenant_min_records: int = DEFAULT_TENANT_MIN_RECORDS
    on_trip: str = "fail"  # or "ask": wait for a person's approval (daily/approval.py)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RunOptions:
        return cls(
            dry_run=bool(params["dry_run"]),
            max_share=float(params["max_share"]),
            allow_large_purge=bool(params["allow_large_purge"]),
            override_reason=str(params["override_reason"] or ""),
            tenant_min_records=int(params.get("tenant_min_records", DEFAULT_TENANT_MIN_RECORDS)),
            on_trip=str(params.get("on_breaker_trip") or "fail"),
        )


def target_share(target: str, planned: int, total: int | None) -> dict[str, Any]:
    """One target's line of the breaker: what the run would delete of what the target holds."""
    share = (planned / total) if total else 0.0
    return {"target": target, "planned": planned, "total": total, "share": round(share, 4)}


def tenant_share(target: str, tenant: str, planned: int, total: int) -> dict[str, Any]:
    """One tenant's line of the breaker in one target."""
    return {**target_share(target, planned, total), "tenant": tenant}


def tripped_lines(shares: Sequence[Mapping[str, Any]], options: RunOptions,
                  tenant_shares: Sequence[Mapping[str, Any]] = ()) -> list[Mapping[str, Any]]:
    """The lines over the limit: targets, then tenants with at least ``tenant_min_records`` planned."""
    over = [b for b in shares if b["total"] and b["share"] > options.max_share]
    return over + [b for b in tenant_shares if b["total"] and b["share"] > options.max_share
                   and b["planned"] >= options.tenant_min_records]


def describe_line(line: Mapping[str, Any]) -> str:
    who = f"{line['target']} (tenant {line['tenant']})" if line.get("tenant") else str(line["target"])
    return f"{who}: {line['planned']} of {line['total']} ({line['share']:.1%})"


def check(shares: Sequence[Mapping[str, Any]], options: RunOptions,
          tenant_shares: Sequence[Mapping[str, Any]] = ()) -> None:
    """Raise :class:`CircuitBreakerTripped` when a target's or a tenant's share is over the limit and not overridden."""
    tripped = tripped_lines(shares, options, tenant_shares)
    if tripped and not options.allow_large_purge:
        detail = "; ".join(describe_line(b) for b in tripped)
        raise CircuitBreakerTripped(
            f"refusing to purge more than {options.max_share:.0%} of a target or of one tenant's records in it: "
            f"{detail}. Nothing was deleted. "
            "If this is intended (a first run over a long backlog), trigger with allow_large_purge=true "
            "and an override_reason; the override is recorded in the audit."
        )
    if tripped and not options.override_reason.strip():
        raise CircuitBreakerTripped("allow_large_purge needs an override_reason, which is recorded in the audit")
