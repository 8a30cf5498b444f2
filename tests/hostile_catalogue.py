"""The hostile-input catalogue: the table in docs/RELIABILITY.md, parsed, and how to feed each case
to the entry point it names.

The table is the single source of the cases, so the document and the tests cannot drift. Each
row is ``| id | entry point | input | refused with |``; the input and the error fragment are
code spans. Inputs are Python literals (so ``"\\x00"`` and ``"\\uff11"`` stay visible), with
``"x" * 200`` allowed for overlong strings and ``TENANT`` standing for the catalogue's own
existing tenant:

- ``deletion request`` / ``termination request``: the fields that replace those of a valid
  request's conf (:func:`request_conf`);
- ``policy file``: one edit of the packaged policy, ``path = value`` or ``del path``, where
  ``targets.<name>`` picks a target by name (:func:`edited_policy`);
- ``tenant override`` / ``legal hold``: the argument list of ``python -m include.retention.cli.admin``.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RELIABILITY = ROOT / "docs" / "RELIABILITY.md"
BEGIN, END = "<!-- hostile-input:begin", "<!-- hostile-input:end -->"
ENTRY_POINTS = ("deletion request", "termination request", "policy file", "tenant override", "legal hold")
REQUEST_ENTRY_POINTS = ENTRY_POINTS[:2]
ADMIN_ENTRY_POINTS = ENTRY_POINTS[3:]
TENANT = "TENANT"
PHONE = "+6581234567"  # the valid deletion's subject: no refusal may repeat it


@dataclass(frozen=True)
class Case:
    case_id: str
    entry_point: str
    source: str  # the input as written in the table
    error: str  # the fragment the refusal's message must contain

    def value(self, tenant: str) -> Any:
        """The input, evaluated, with ``TENANT`` replaced by ``tenant``."""
        return _replace_tenant(literal(self.source), tenant)


def _replace_tenant(value: Any, tenant: str) -> Any:
    if isinstance(value, str):
        return tenant if value == TENANT else value
    if isinstance(value, list):
        return [_replace_tenant(v, tenant) for v in value]
    if isinstance(value, dict):
        return {k: _replace_tenant(v, tenant) for k, v in value.items()}
    return value


def literal(source: str) -> Any:
    """A Python literal, plus ``str * int`` (overlong inputs) and ``str + str``."""

    def evaluate(node: ast.AST) -> Any:
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Add)):
            left, right = evaluate(node.left), evaluate(node.right)
            if isinstance(node.op, ast.Mult) and isinstance(left, str) and type(right) is int and right < 100_000:
                return left * right
            if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
                return left + right
            raise ValueError(f"unsupported expression in {source!r}")
        if isinstance(node, ast.Dict):
            return {evaluate(k): evaluate(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
        if isinstance(node, ast.List):
            return [evaluate(e) for e in node.elts]
        return ast.literal_eval(node)

    return evaluate(ast.parse(source, mode="eval").body)


def _cells(line: str) -> list[str]:
    # cells are split on '|' outside code spans; no case needs a '|' of its own
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _code(cell: str, where: str) -> str:
    match = re.fullmatch(r"`(.*)`", cell)
    if not match:
        raise ValueError(f"{where}: expected one code span, got {cell!r}")
    return match.group(1)


def load_catalogue(path: Path = RELIABILITY) -> list[Case]:
    """Every case of the table between the hostile-input markers."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END)
    rows = [line for line in text[start:end].splitlines() if line.startswith("|")]
    header, cases = _cells(rows[0]), []
    if header != ["id", "entry point", "input", "refused with"]:
        raise ValueError(f"{path}: unexpected catalogue header {header}")
    for line in rows[2:]:
        cells = _cells(line)
        case_id = cells[0]
        if len(cells) != 4 or cells[1] not in ENTRY_POINTS:
            raise ValueError(f"{path}: catalogue row {case_id}: expected 4 cells and an entry point of {ENTRY_POINTS}")
        cases.append(Case(case_id, cells[1], _code(cells[2], case_id), _code(cells[3], case_id)))
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: catalogue ids repeat")
    return cases


def cases_of(*entry_points: str) -> list[Case]:
    return [c for c in load_catalogue() if c.entry_point in entry_points]


# --------------------------------------------------------------------------- requests


def request_conf(case: Case, tenant: str) -> dict[str, Any]:
    """A valid request of the case's type for ``tenant``, with the case's fields replacing its own."""
    conf: dict[str, Any] = {"tenant_id": tenant, "reference": f"HOSTILE-{tenant}-{case.case_id}",
                            "requested_by": "dpo@example.test", "mode": "execute", "categories": [],
                            "received_at": None, "resume": False}
    if case.entry_point == "deletion request":
        conf.update(request_type="deletion", subject_type="phone_number", subject_id=PHONE)
    else:
        conf.update(request_type="termination", subject_type=None, subject_id=None)
    conf.update(case.value(tenant))
    return conf


# --------------------------------------------------------------------------- policy


def _step(node: Any, key: str) -> tuple[Any, Any]:
    """(container, key) for one path element; ``targets.<name>`` is the target of that name."""
    if isinstance(node, list):
        index = next((i for i, t in enumerate(node) if isinstance(t, dict) and t.get("name") == key), None)
        if index is None:
            raise KeyError(f"no target named {key!r}")
        return node, index
    return node, key


def edited_policy(case: Case, packaged: Path) -> dict[str, Any]:
    """The packaged policy with the case's one edit applied."""
    doc = copy.deepcopy(yaml.safe_load(packaged.read_text(encoding="utf-8")))
    edit = case.source.strip()
    delete = edit.startswith("del ")
    path, _, value = (edit[4:], "", "") if delete else edit.partition(" = ")
    keys = path.strip().split(".")
    node: Any = doc
    for key in keys[:-1]:
        container, k = _step(node, key)
        node = container[k]
    container, k = _step(node, keys[-1])
    if delete:
        del container[k]
    else:
        container[k] = literal(value)
    return doc
