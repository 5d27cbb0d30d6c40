"""The shape of the tree, checked: no import cycles, the two tools import only the shared core, every module has its
test module at the mirrored path, files stay short, and no test skips except through tests/real_components.py.

The import graph is read with `ast` (not by importing), so lazy imports inside functions count too: a cycle that only
a lazy import hides is still a cycle in the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("calibkit", "logminer", "imatrix")
MAX_LINES = 400
# files that may stay longer than MAX_LINES, each with the reason (keep this list short, shrink before adding)
LONG_FILES: dict[str, str] = {}
# what each package may import from the others (calibkit is the shared core)
ALLOWED_PACKAGES = {"calibkit": {"calibkit"}, "logminer": {"logminer", "calibkit"}, "imatrix": {"imatrix", "calibkit"}}
# pytest's ways to skip or expect failure; only tests/real_components.py may use them (skip locally, fail in CI)
SKIP_NAMES = {"skip", "skipif", "importorskip", "xfail"}


def project_modules(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Dotted module name → file, for every module of the three packages (a package is its __init__.py)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _owning_module(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of `name` that is a project module (`a.b.func` → `a.b`), or None for outside modules."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """Project modules that module `name` imports anywhere in its file (top level, functions, TYPE_CHECKING)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            # `from a.b import c` imports module a.b.c when there is one, else the name c of module a.b
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(owner for owner in map(lambda t: _owning_module(t, modules), targets) if owner)
    found.discard(name)
    return found


def import_graph(root: Path = REPO_ROOT) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_cycle_finder_finds_planted_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"g"}}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["e", "f"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_import_graph_reads_relative_lazy_and_from_imports(tmp_path):
    (tmp_path / "logminer" / "split").mkdir(parents=True)
    (tmp_path / "calibkit").mkdir()
    (tmp_path / "imatrix").mkdir()
    for package in ("logminer", "logminer/split", "calibkit", "imatrix"):
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "calibkit" / "atomic.py").write_text("X = 1\n")
    (tmp_path / "logminer" / "split" / "lsh.py").write_text("from . import dedup\nfrom ..schema import Session\n")
    (tmp_path / "logminer" / "split" / "dedup.py").write_text("def f():\n    import logminer.split.lsh\n")
    (tmp_path / "logminer" / "schema.py").write_text("from calibkit.atomic import X\nimport numpy\n")
    graph = import_graph(tmp_path)
    assert graph["logminer.split.lsh"] == {"logminer.split.dedup", "logminer.schema"}
    assert graph["logminer.split.dedup"] == {"logminer.split.lsh"}
    assert graph["logminer.schema"] == {"calibkit.atomic"}
    assert cycles(graph) == [["logminer.split.dedup", "logminer.split.lsh"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_tools_import_only_the_shared_core():
    graph = import_graph()
    crossing = sorted(f"{module} imports {target}" for module, targets in graph.items() for target in targets
                      if target.split(".")[0] not in ALLOWED_PACKAGES[module.split(".")[0]])
    assert crossing == []
    assert any(t.startswith("calibkit.") for m, ts in graph.items() if m.startswith("imatrix.") for t in ts)


def mirrored_test_path(module_path: Path) -> Path:
    relative = module_path.relative_to(REPO_ROOT)
    return REPO_ROOT / "tests" / relative.parent / f"test_{relative.name}"


def test_every_module_has_a_test_module_at_the_mirrored_path():
    missing = sorted(str(mirrored_test_path(path).relative_to(REPO_ROOT)) for path in project_modules().values()
                     if path.name != "__init__.py" and not mirrored_test_path(path).is_file())
    assert missing == []


def _python_files() -> list[Path]:
    folders = (*PACKAGES, "tests", "benchmarks", "scripts")
    return sorted(path for folder in folders for path in (REPO_ROOT / folder).rglob("*.py"))


def test_files_stay_short():
    lengths = {str(path.relative_to(REPO_ROOT)): len(path.read_text().splitlines()) for path in _python_files()}
    too_long = {path: n for path, n in lengths.items() if n > MAX_LINES and path not in LONG_FILES}
    assert too_long == {}
    assert [path for path in LONG_FILES if lengths.get(path, 0) <= MAX_LINES] == [], "shrunk: drop the exception"


def skip_calls(source: str) -> list[int]:
    """Lines that skip or xfail through pytest: pytest.skip/importorskip/xfail, pytest.mark.skip(if)/xfail, or a
    name imported from pytest under those names."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in SKIP_NAMES:
            owner = ast.unparse(node.value)
            if owner in ("pytest", "pytest.mark", "unittest") or owner.endswith(".mark"):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module in ("pytest", "unittest"):
            if any(alias.name in SKIP_NAMES | {"SkipTest"} for alias in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "SkipTest":
            lines.append(node.lineno)
    return sorted(lines)


@pytest.mark.parametrize("source, expected", [
    ("import pytest\npytest.skip('x')\n", [2]),
    ("import pytest\nm = pytest.importorskip('numpy')\n", [2]),
    ("import pytest\n@pytest.mark.skipif(True, reason='x')\ndef test(): pass\n", [2]),
    ("import pytest\n@pytest.mark.xfail\ndef test(): pass\n", [2]),
    ("from pytest import skip\n", [1]),
    ("import unittest\nraise unittest.SkipTest('x')\n", [2]),
    ("from tests.real_components import require_model\nrequire_model()\nskipped = 3\n", []),
])
def test_skip_scanner(source, expected):
    assert skip_calls(source) == expected


def test_no_test_skips_outside_real_components():
    """A missing real component skips locally and fails in CI (tests/real_components.py); nothing else skips."""
    found = {str(path.relative_to(REPO_ROOT)): skip_calls(path.read_text())
             for path in sorted((REPO_ROOT / "tests").rglob("*.py")) if path.name != "real_components.py"}
    assert {path: lines for path, lines in found.items() if lines} == {}
