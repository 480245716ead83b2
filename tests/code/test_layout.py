"""The shape of ``jobs/``: one package per stage, imports in one direction, no cycle, working entry points.

The import graph is read from the source (every ``import``/``from`` statement, including the ones
inside functions), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
import contextlib
import io
import runpy
import sys
from pathlib import Path

import pytest

JOBS = Path(__file__).resolve().parents[2] / "jobs"

# package -> the packages it may import (besides itself); the order of the stages, top to bottom
ALLOWED = {
    "config": set(),
    "platform": {"config"},
    "features": {"config", "platform"},
    "data": {"config", "platform", "features"},  # backfill runs the feature job after ingestion and dbt
    "evaluation": {"config", "features"},
    "release": {"config", "platform", "features", "evaluation"},
    "training": {"config", "platform", "features", "evaluation", "release"},
    "scoring": {"config", "platform", "features", "evaluation", "release"},
    "monitoring": {
        "config",
        "platform",
        "data",
        "features",
        "evaluation",
        "release",
        "scoring",
    },  # data: the landing contract
    # rolls a version out through the registry (release), judges it by the prediction log (scoring); the
    # Bento is tagged with the commit as training records it (training.context)
    "deployment": {"config", "platform", "features", "evaluation", "release", "scoring", "training"},
    # the auditor's answers and the Models page read everything below (registry, scores, checks);
    # `reproduce` retrains a version (training)
    "governance": {"config", "platform", "features", "evaluation", "release", "scoring", "monitoring", "training"},
}
CLIS = [
    "jobs.data.simulate",
    "jobs.data.ingest",
    "jobs.data.reference",
    "jobs.data.backfill",
    "jobs.features.build",
    "jobs.features.validate",
    "jobs.features.cost",
    "jobs.training.train",
    "jobs.release.registry",
    "jobs.platform.lakehouse",
    "jobs.platform.dbt_runner",
    "jobs.monitoring.checks",
    "jobs.monitoring.report",
    "jobs.governance",
    "jobs.governance.lakehouse",
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(JOBS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in JOBS.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t in modules and t != name and t != "jobs":
                    graph[name].add(t)
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "jobs"


def test_no_import_cycle_anywhere_in_jobs():
    graph = _graph()
    # Tarjan's strongly connected components: any component of two or more modules is a cycle
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_packages_import_only_the_stages_below_them():
    bad = []
    for module, targets in _graph().items():
        package = _package(module)
        if package == "jobs":
            continue
        assert package in ALLOWED, f"new package {package}: add it to ALLOWED with the packages it may import"
        for t in targets:
            if _package(t) not in ALLOWED[package] | {package}:
                bad.append(f"{module} imports {t}")
    assert bad == []


def test_the_walk_sees_lazy_imports():
    """The checker itself: an import inside a function is an edge (``training.train`` imports the gate in ``main``)."""
    graph = _graph()
    assert "jobs.release.gate" in graph["jobs.training.train"]
    assert "jobs.features.build" in graph["jobs.data.backfill"]


def test_jobs_never_import_airflow():
    offenders = []
    for path in JOBS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.relative_to(JOBS)}: {n}" for n in names if n.split(".")[0] in ("airflow", "cosmos")]
    assert offenders == []


def test_every_package_says_what_it_owns():
    for init in JOBS.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 60, f"{init.relative_to(JOBS.parent)} needs a docstring saying what the package owns"
    packages = {p.parent.name for p in JOBS.rglob("__init__.py")} - {"jobs"}
    assert packages == set(ALLOWED) - {"config"}


@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package")
@pytest.mark.parametrize("module", CLIS)
def test_entry_point_answers_help(module, monkeypatch):
    """``python -m jobs.<package>.<module> --help`` works (run in-process, as ``-m`` would)."""
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        runpy.run_module(module, run_name="__main__", alter_sys=False)
    assert exit_.value.code in (0, None)
    assert "usage:" in out.getvalue().lower()
