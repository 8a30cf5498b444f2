"""The circuit breaker and the options of one daily run.

A run that would delete more than ``max_share`` of any target fails before deleting
anything (a policy typo, a clock gone wrong); ``allow_large_purge`` with an
``override_reason`` lets it through, and the reason is recorded in the audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

DEFAULT_MAX_SHARE = 0.5


class CircuitBreakerTripped(RuntimeError):
    """A run would delete more than it safely should; nothing was deleted."""


@dataclass(frozen=True)
class RunOptions:
    """What an operator chose for one run (the DAG's params)."""

    dry_run: bool = False
    max_share: float = DEFAULT_MAX_SHARE
    allow_large_purge: bool = False
    override_reason: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RunOptions:
        return cls(
            dry_run=bool(params["dry_run"]),
            max_share=float(params["max_share"]),
            allow_large_purge=bool(params["allow_large_purge"]),
            override_reason=str(params["override_reason"] or ""),
        )


def target_share(target: str, planned: int, total: int | None) -> dict[str, Any]:
    """One target's line of the breaker: what the run would delete of what the target holds."""
    share = (planned / total) if total else 0.0
    return {"target": target, "planned": planned, "total": total, "share": round(share, 4)}


def check(shares: Sequence[Mapping[str, Any]], options: RunOptions) -> None:
    """Raise :class:`CircuitBreakerTripped` when a target's share is over the limit and not overridden."""
    tripped = [b for b in shares if b["total"] and b["share"] > options.max_share]
    if tripped and not options.allow_large_purge:
        detail = "; ".join(f"{b['target']}: {b['planned']} of {b['total']} ({b['share']:.1%})" for b in tripped)
        raise CircuitBreakerTripped(
            f"refusing to purge more than {options.max_share:.0%} of a target: {detail}. Nothing was deleted. "
            "If this is intended (a first run over a long backlog), trigger with allow_large_purge=true "
            "and an override_reason; the override is recorded in the audit."
        )
    if tripped and not options.override_reason.strip():
        raise CircuitBreakerTripped("allow_large_purge needs an override_reason, which is recorded in the audit")
