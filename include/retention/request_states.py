"""A request's life, in one place: its states, the moves between them, its steps' states and kinds.

``received -> planned -> in_progress -> verifying -> completed``; ``failed`` can be retried
(a new run, or the SLA monitor's re-trigger); ``rejected`` ends a request. A request type the
policy's ``request_approval`` names waits in ``awaiting_approval`` after its plan, until a second
Airflow user approves (back to ``planned``), rejects (``rejected``), or nobody answers in time
(``failed``, like a self-approval: a new run asks again).
"""

from __future__ import annotations

from typing import Mapping

#: The on-demand DAG that carries out requests (the SLA monitor re-triggers it, forget_runs cleans it).
REQUESTS_DAG_ID = "deletion_requests"

MODES = ("preview", "execute")
STATES = ("received", "planned", "awaiting_approval", "in_progress", "verifying", "completed", "failed", "rejected")
TERMINAL_STATES = frozenset({"completed", "rejected"})
#: States of an accepted request that is not finished: what the SLA monitor watches.
OPEN_STATES = ("received", "planned", "awaiting_approval", "in_progress", "verifying", "failed")
#: Requests whose window the daily DAGs sweep: everything accepted for execution.
SWEPT_STATES = ("received", "planned", "awaiting_approval", "in_progress", "verifying", "completed", "failed")

#: The state machine. A new run of an unfinished request plans it again (``planned``).
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "received": frozenset({"planned", "failed", "rejected"}),
    "planned": frozenset({"planned", "awaiting_approval", "in_progress", "failed"}),
    "awaiting_approval": frozenset({"planned", "awaiting_approval", "failed", "rejected"}),
    "in_progress": frozenset({"planned", "in_progress", "verifying", "failed"}),
    "verifying": frozenset({"planned", "in_progress", "verifying", "completed", "failed"}),
    "failed": frozenset({"planned", "in_progress", "failed"}),
    "completed": frozenset(),
    "rejected": frozenset(),
}

STEP_PENDING, STEP_RUNNING, STEP_VERIFIED, STEP_FAILED = "pending", "in_progress", "verified", "failed"
#: purge: a tenant or subject selection the store addresses itself; purge_keys: explicit
#: object keys resolved from a MySQL column (recordings); expiry: data the store cannot
#: address per subject (backups), which expires by date, or is purged by day when it would
#: outlive the request's due date.
KIND_PURGE, KIND_KEYS, KIND_EXPIRY = "purge", "purge_keys", "expiry"


class InvalidTransition(RuntimeError):
    """A state change the state machine does not allow."""


def allowed_from(to_state: str) -> frozenset[str]:
    """The states a request may move to ``to_state`` from."""
    if to_state not in STATES:
        raise ValueError(f"unknown state {to_state!r}")
    return frozenset(s for s, targets in TRANSITIONS.items() if to_state in targets)


def check_transition(from_state: str, to_state: str) -> None:
    """Raise :class:`InvalidTransition` unless the state machine allows ``from_state -> to_state``."""
    if from_state not in TRANSITIONS or to_state not in TRANSITIONS[from_state]:
        raise InvalidTransition(f"a request cannot go from {from_state} to {to_state}")
