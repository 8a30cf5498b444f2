"""Imports run one way, read statically from the source (nothing is imported to check it).

- The dashboard (``include/retention/dashboard/`` and its plugin) reaches nothing that
  deletes: no store, no daily purge, no request flow, no certificate issuing; of the
  certificates only the pure rendering.
- The pure planner (``expiry.py``) reaches no store.
- No import circle among the modules of ``include/``, ``dags/`` and ``plugins/``.
- No module there is over 600 lines.

Every ``import`` counts, also those inside functions and under ``TYPE_CHECKING``; importing
a module also runs its parent packages' ``__init__``, so those count as reached.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVELS = ("include", "dags", "plugins")
MAX_LINES = 600

DASHBOARD_ENTRIES = ("plugins.retention_dashboard",)
#: What the read-only dashboard must never load: modules that delete, write or carry out requests.
DASHBOARD_FORBIDDEN = (
    "include.retention.stores",
    "include.retention.daily",
    "include.retention.requests",
    "include.retention.certificates.issue",
    "include.retention.certificates.document",
)
DASHBOARD_CERTIFICATES_ALLOWED = frozenset({"include.retention.certificates", "include.retention.certificates.render"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every Python module under include/, dags/ and plugins/, by dotted name."""
    found: dict[str, Path] = {}
    for top in TOP_LEVELS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(path)] = path
    return found


def _is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def _resolve(name: str, node: ast.ImportFrom) -> str:
    """The absolute module of a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    package = name if _is_package(name) else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


@cache
def imports_of(name: str) -> frozenset[str]:
    """The project modules ``name`` imports itself (anywhere in the file)."""
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"), filename=str(modules()[name]))
    wanted: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            wanted.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node)
            wanted.add(base)
            wanted.update(f"{base}.{alias.name}" for alias in node.names)  # submodules imported by name
    known = modules()
    return frozenset(m for m in wanted if m in known and m != name)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules()]


def reached_from(*entries: str) -> dict[str, str]:
    """Every project module loaded by importing ``entries``, each with the module that first imports it."""
    seen: dict[str, str] = {e: "(entry)" for e in entries}
    todo = list(entries)
    while todo:
        current = todo.pop()
        for nxt in (*imports_of(current), *_parents(current)):
            if nxt not in seen:
                seen[nxt] = current
                todo.append(nxt)
    return seen


def _chain(seen: dict[str, str], name: str) -> str:
    chain = [name]
    while seen[chain[-1]] != "(entry)":
        chain.append(seen[chain[-1]])
    return " <- ".join(chain)


def _forbidden(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_the_project() -> None:
    """The walk must know the modules it judges, or every check below passes vacuously."""
    assert "include.retention.dashboard.app" in modules() and "plugins.retention_dashboard" in modules()
    reached = reached_from(*DASHBOARD_ENTRIES)
    assert {"include.retention.dashboard.app", "include.retention.dashboard.queries",
            "include.retention.dashboard.view", "include.retention.certificates.render"} <= set(reached)


def _dashboard_entries() -> tuple[str, ...]:
    return DASHBOARD_ENTRIES + tuple(sorted(m for m in modules() if m.startswith("include.retention.dashboard")))


def test_the_dashboard_reaches_nothing_that_deletes() -> None:
    reached = reached_from(*_dashboard_entries())
    bad = sorted(m for m in reached if _forbidden(m, DASHBOARD_FORBIDDEN))
    assert not bad, "the dashboard imports what it must not:\n" + "\n".join(_chain(reached, m) for m in bad)


def test_the_dashboard_imports_only_the_pure_certificate_rendering() -> None:
    reached = reached_from(*_dashboard_entries())
    certificates = {m for m in reached if m.startswith("include.retention.certificates")}
    assert certificates <= DASHBOARD_CERTIFICATES_ALLOWED, "\n".join(
        _chain(reached, m) for m in sorted(certificates - DASHBOARD_CERTIFICATES_ALLOWED))


def test_the_audit_ledger_the_dashboard_reads_reaches_no_store() -> None:
    """The dashboard reads ``purge_audit`` through ``ledger/audit.py``: acceptable only while
    that module loads no store (it runs a purge it is handed, it deletes nothing itself)."""
    reached = reached_from("include.retention.ledger.audit")
    bad = sorted(m for m in reached if _forbidden(m, ("include.retention.stores", "include.retention.daily",
                                                      "include.retention.requests")))
    assert not bad, "\n".join(_chain(reached, m) for m in bad)


def test_the_pure_planner_reaches_no_store() -> None:
    reached = reached_from("include.retention.expiry")
    bad = sorted(m for m in reached if _forbidden(m, ("include.retention.stores",)))
    assert not bad, "\n".join(_chain(reached, m) for m in bad)


def _circles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(imports_of(v)):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(modules()):
        if name not in index:
            visit(name)
    return found


def test_no_import_circle() -> None:
    circles = _circles()
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


@pytest.mark.parametrize("top", TOP_LEVELS)
def test_no_module_over_600_lines(top: str) -> None:
    long = {str(p.relative_to(ROOT)): n for name, p in modules().items() if name.split(".")[0] == top
            for n in [len(p.read_text(encoding="utf-8").splitlines())] if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


DEV_TOOLING = ("devdata", "devservers", "tests", "benchmarks", "scripts")


def test_product_code_imports_no_dev_tooling() -> None:
    """The synthetic contact center, the local servers and the test helpers are not deployed
    with the DAGs: nothing under include/, dags/ or plugins/ may import them."""
    bad = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{name} imports {t}" for t in targets if _forbidden(t, DEV_TOOLING)]
    assert not bad, "\n".join(bad)


def _task_bodies(path: Path) -> list[ast.FunctionDef]:
    """The functions a DAG file decorates with ``@task`` (``@task`` or ``@task(...)``)."""
    def is_task(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return isinstance(target, ast.Name) and target.id == "task"

    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and any(map(is_task, n.decorator_list))]


@pytest.mark.parametrize("dag_file", sorted(p.name for p in (ROOT / "dags").glob("*.py")))
def test_dag_files_only_wire(dag_file: str) -> None:
    """Each task body is a docstring, imports, and one ``return`` of a call into include/ (or of
    its argument unchanged): the decisions live in include/, where they are unit-tested."""
    path = ROOT / "dags" / dag_file
    bodies = _task_bodies(path)
    assert bodies, f"{dag_file} defines no @task"
    for fn in bodies:
        statements = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        logic = [s for s in statements if not isinstance(s, (ast.Import, ast.ImportFrom))]
        assert len(logic) == 1 and isinstance(logic[0], ast.Return), (
            f"{dag_file}:{fn.lineno} task {fn.name} does more than call include/: move its logic there"
        )
        for s in statements:
            if isinstance(s, ast.ImportFrom):
                assert (s.module or "").startswith("include."), f"{dag_file}:{s.lineno} task {fn.name} imports {s.module}"
