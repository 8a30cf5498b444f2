"""Copies of the packaged policy with a few top-level keys changed, for the tests and the demo.

``dag.test()`` runs a DAG in one process, where no second Airflow user can answer an
approval: the tests and the demo run with the four-eyes approval off (:data:`NO_APPROVAL`),
except the tests of the approval itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from include.retention.policy import DEFAULT_POLICY_PATH, parse_policy

#: ``request_approval`` with no request type waiting for a second user.
NO_APPROVAL: dict[str, Any] = {"request_approval": {"required_for": []}}


def write_policy_variant(path: Path, changes: dict[str, Any], base: Path = DEFAULT_POLICY_PATH) -> Path:
    """Write ``base`` with the top-level keys in ``changes`` replaced to ``path`` (validated; atomic)."""
    raw = yaml.safe_load(base.read_text(encoding="utf-8"))
    raw.update(changes)
    parse_policy(raw, path)  # refuse to write a policy the DAGs would refuse to load
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"# Generated from {base.name} with {sorted(changes)} changed; do not edit.\n"
                   + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tmp.replace(path)
    return path
