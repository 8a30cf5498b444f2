"""Operator commands for the ledger: extended retention and legal holds.

    python -m include.retention.cli.admin migrate
    python -m include.retention.cli.admin override set TENANT CATEGORY MONTHS --reason R --by WHO
    python -m include.retention.cli.admin override clear TENANT CATEGORY
    python -m include.retention.cli.admin override list [--category C]
    python -m include.retention.cli.admin hold place TENANT --reason R --by WHO [--subject-type T --subject-id ID]
    python -m include.retention.cli.admin hold release HOLD_ID
    python -m include.retention.cli.admin hold list [--tenant T] [--all]

The ledger is the ``retention_ledger`` connection (``AIRFLOW_CONN_RETENTION_LEDGER``). Every
id is validated against the policy first, and ``set`` and ``place`` check the tenant exists in
the contact center (``retention_mysql``); a subject id is stored only as its keyed hash and
an encrypted token, and is never printed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from include.retention.ledger.holds import list_holds, place_hold, release_hold
from include.retention.ledger.migrations import migrate
from include.retention.ledger.overrides import clear_override, list_overrides, set_override
from include.retention.policy import Policy, load_policy


def _existing_tenant(policy: Policy, value: str) -> str:
    """A well-formed tenant id that the contact center knows: an override or hold on a
    mistyped id would protect nothing, silently."""
    from include.retention.requests.intake import TenantRegistryMissing, tenant_in_contact_center

    tenant = policy.validate_tenant_id(value)
    registry = policy.tenant_registry
    try:
        known = tenant_in_contact_center(policy, tenant)
    except TenantRegistryMissing as exc:
        raise SystemExit(f"error: {exc}") from None
    if not known:
        raise SystemExit(f"unknown tenant {tenant}: it is not in the contact center's tenant registry "
                         f"{registry.table}({registry.column}); check the id")
    return tenant


def _override(args: argparse.Namespace) -> int:
    policy = load_policy()
    if args.action == "list":
        for o in list_overrides(args.category):
            print(f"{o.tenant_id:<22}{o.category:<16}{o.retention_months:>4} months  set {o.set_at:%Y-%m-%d} by {o.set_by}: {o.reason}")
        return 0
    tenant = policy.validate_tenant_id(args.tenant)
    category = policy.category(args.category)
    if args.action == "clear":
        print("cleared" if clear_override(tenant, category.name) else "no such override")
        return 0
    if not (category.retention.extendable and category.retention.months):
        raise SystemExit(f"{category.name} is kept {category.retention.describe()}: it cannot be extended")
    if args.months <= category.retention.months:
        raise SystemExit(f"extended retention must be longer than the policy's {category.retention.months} months")
    tenant = _existing_tenant(policy, tenant)
    set_override(tenant, category.name, args.months, reason=args.reason, set_by=args.by)
    print(f"tenant {tenant} keeps {category.name} for {args.months} months")
    return 0


def _hold(args: argparse.Namespace) -> int:
    policy = load_policy()
    if args.action == "list":
        for h in list_holds(tenant_id=args.tenant, active_only=not args.all):
            who = f"{h.subject_type} {h.subject_hash[:12]}" if h.subject_hash else "whole tenant"
            state = "active" if h.active else f"released {h.released_at:%Y-%m-%d}"
            print(f"#{h.id:<5}{h.tenant_id:<22}{who:<30}{state:<20}placed {h.placed_at:%Y-%m-%d} by {h.placed_by}: {h.reason}")
        return 0
    if args.action == "release":
        print("released" if release_hold(args.hold_id) else "no active hold with that id")
        return 0
    tenant = policy.validate_tenant_id(args.tenant)
    crypto = None
    if args.subject_type or args.subject_id:
        from include.retention.crypto import RetentionCrypto

        if not (args.subject_type and args.subject_id):
            raise SystemExit("give --subject-type and --subject-id together, or neither for a whole-tenant hold")

        policy.validate_subject(args.subject_type, args.subject_id)
        crypto = RetentionCrypto.from_connection()
    tenant = _existing_tenant(policy, tenant)
    hold_id = place_hold(tenant, reason=args.reason, placed_by=args.by, subject_type=args.subject_type,
                         subject_id=args.subject_id, crypto=crypto)
    print(f"hold #{hold_id} placed on tenant {tenant}{' (one subject)' if crypto else ''}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.retention.cli.admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the ledger schema (idempotent)")

    ov = sub.add_parser("override", help="extended retention per tenant and category")
    ov_sub = ov.add_subparsers(dest="action", required=True)
    s = ov_sub.add_parser("set")
    s.add_argument("tenant")
    s.add_argument("category")
    s.add_argument("months", type=int)
    s.add_argument("--reason", required=True)
    s.add_argument("--by", required=True)
    c = ov_sub.add_parser("clear")
    c.add_argument("tenant")
    c.add_argument("category")
    lo = ov_sub.add_parser("list")
    lo.add_argument("--category")

    hd = sub.add_parser("hold", help="legal holds on a tenant or one of its subjects")
    hd_sub = hd.add_subparsers(dest="action", required=True)
    p = hd_sub.add_parser("place")
    p.add_argument("tenant")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", required=True)
    p.add_argument("--subject-type")
    p.add_argument("--subject-id")
    r = hd_sub.add_parser("release")
    r.add_argument("hold_id", type=int)
    lh = hd_sub.add_parser("list")
    lh.add_argument("--tenant")
    lh.add_argument("--all", action="store_true", help="include released holds")

    args = parser.parse_args(argv)
    if args.command == "migrate":
        applied = migrate()
        print(f"applied migrations: {applied or 'none (up to date)'}")
        return 0
    return _override(args) if args.command == "override" else _hold(args)


if __name__ == "__main__":
    sys.exit(main())
