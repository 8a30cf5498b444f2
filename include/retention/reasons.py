"""Why a purge selected what it did, and what it kept out, as data for the audit.

Every ``purge_audit`` row carries two JSON documents built here:

* ``rule``: the rule that selected the records. ``{"rule": "policy", "months": 6}`` (or
  ``"days"``), ``{"rule": "extended", "months": 12, "policy_months": 6, "override_id": 7}``,
  ``{"rule": "termination", "request_id": "…"}``, ``{"rule": "deletion", "request_id": "…"}``,
  ``{"rule": "late_backups", "request_id": "…"}`` (backups that would outlive a request's due date).
* ``withheld``: what the purge kept out and why: ``{"tenants": [{"tenant": "2003", "why":
  "legal_hold", "hold_ids": [4]}, {"tenant": "2002", "why": "extended", "override_id": 7}],
  "hold_ids": [5]}`` (``hold_ids`` at the top: holds on single subjects whose records stayed).

No personal data: tenants, hold ids, override ids and request ids only; a held subject is
never named.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from include.retention.facts import LegalHold, TenantOverride
from include.retention.policy import Retention
from include.retention.selections import ExpiredSelection, Selection, SubjectSelection

Doc = dict[str, Any]


def policy_rule(retention: Retention) -> Doc:
    """The policy's own rule: months or days."""
    if retention.months is not None:
        return {"rule": "policy", "months": retention.months}
    return {"rule": "policy", "days": retention.days}


def extended_rule(retention: Retention, override: TenantOverride) -> Doc:
    """A tenant's extended storage, with the override that grants it."""
    return {"rule": "extended", "months": override.retention_months, "policy_months": retention.months,
            "override_id": override.id}


def request_rule(kind: str, request_id: str) -> Doc:
    """A termination or deletion request (or its late backups), by request id."""
    return {"rule": kind, "request_id": request_id}


def withheld(
    selection: Selection,
    holds: Iterable[LegalHold],
    overrides: Mapping[str, TenantOverride] | None = None,
    *,
    blocked_tenants: Iterable[str] = (),
) -> Doc:
    """What ``selection`` keeps out and why; empty when it keeps nothing out.

    :param overrides: extended retention by tenant (why a tenant is excluded when not held).
    :param blocked_tenants: tenants kept whole in a per-tenant layout (a hold on them or on
        one of their subjects), which no selection of the target names.
    """
    holds = list(holds)
    overrides = overrides or {}
    excluded = set(selection.exclude_tenants) if isinstance(selection, ExpiredSelection) else set()
    tenants: list[Doc] = []
    for tenant in sorted(excluded | set(blocked_tenants)):
        hold_ids = sorted(h.id for h in holds if h.tenant_id == tenant and (h.whole_tenant or tenant not in excluded))
        if hold_ids:
            tenants.append({"tenant": tenant, "why": "legal_hold", "hold_ids": hold_ids})
        elif tenant in overrides:
            tenants.append({"tenant": tenant, "why": "extended", "override_id": overrides[tenant].id})
        else:
            tenants.append({"tenant": tenant, "why": "excluded"})
    subjects = (selection.exclude_subjects
                if isinstance(selection, (ExpiredSelection, SubjectSelection)) else frozenset())
    subject_holds = sorted(h.id for h in holds
                           if not h.whole_tenant and (h.tenant_id, h.subject_type, h.subject_id) in subjects)
    doc: Doc = {}
    if tenants:
        doc["tenants"] = tenants
    if subject_holds:
        doc["hold_ids"] = subject_holds
    return doc


def describe_rule(rule: Mapping[str, Any] | None) -> str:
    """One line for people (dashboard, certificate): 'policy: 6 months', 'extended: 12 months (override 7)'."""
    if not rule:
        return ""
    kind = rule.get("rule", "")
    if kind == "policy":
        return f"policy: {rule['months']} months" if "months" in rule else f"policy: {rule.get('days')} days"
    if kind == "extended":
        return f"extended: {rule['months']} months (override {rule.get('override_id')}, policy {rule.get('policy_months')})"
    if "request_id" in rule:
        return f"{kind.replace('_', ' ')}: request {rule['request_id']}"
    return str(kind)


def describe_withheld(doc: Mapping[str, Any] | None) -> str:
    """One line for people: 'kept: tenant 2003 (legal hold 4); tenant 2002 (extended, override 7); holds 5'."""
    if not doc:
        return ""
    parts = []
    for t in doc.get("tenants", ()):
        if t["why"] == "legal_hold":
            parts.append(f"tenant {t['tenant']} (legal hold {', '.join(str(i) for i in t['hold_ids'])})")
        elif t["why"] == "extended":
            parts.append(f"tenant {t['tenant']} (extended, override {t['override_id']})")
        else:
            parts.append(f"tenant {t['tenant']}")
    if doc.get("hold_ids"):
        parts.append("records of subjects on legal hold " + ", ".join(str(i) for i in doc["hold_ids"]))
    return "kept: " + "; ".join(parts)
