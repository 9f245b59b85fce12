"""Dependencies run one way: app -> bench -> (eval | finetune) -> extraction, with no module
importing another that imports it back. Every import counts, also those inside functions
(a circle held together by a late import is still a circle), and a module inside a package
imports its siblings, not the package's ``__init__`` (which imports them)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each package may import itself and the packages listed after it.
LAYERS = {
    "app": {"bench", "eval", "finetune", "extraction", "matextract_data"},
    "bench": {"eval", "finetune", "extraction", "matextract_data"},
    "eval": {"extraction", "matextract_data"},
    "finetune": {"extraction", "matextract_data"},
    "extraction": {"matextract_data"},
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path, known: set[str]) -> set[str]:
    """Our modules ``path`` imports anywhere in its body (``from a import b`` counts as a.b
    when a.b is a module, else as a)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for top in LAYERS for p in (root / top).rglob("*.py")}
    known = set(files)
    return {name: imported_modules(path, root, known) for name, path in files.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for source, targets in sorted(graph.items()):
        top = source.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other != top and other not in LAYERS[top]:
                problems.append(f"{source} imports {target} ({top} may not import {other})")
    return problems


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_upward_imports():
    assert upward_imports(import_graph(ROOT)) == []


def test_no_import_circles():
    assert circles(import_graph(ROOT)) == []


@pytest.mark.parametrize("planted, expected", [
    ("from app.cli.main import main\n", "extraction.planted imports app.cli.main"),
    ("def late():\n    from finetune.data import build_pairs\n",
     "extraction.planted imports finetune.data"),
])
def test_a_planted_upward_import_is_found(tmp_path: Path, planted: str, expected: str):
    for top in LAYERS:
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text("")
    (tmp_path / "app" / "cli").mkdir()
    (tmp_path / "app" / "cli" / "__init__.py").write_text("")
    (tmp_path / "app" / "cli" / "main.py").write_text("def main(): pass\n")
    (tmp_path / "finetune" / "data.py").write_text("def build_pairs(): pass\n")
    (tmp_path / "extraction" / "planted.py").write_text(planted)
    problems = upward_imports(import_graph(tmp_path))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_planted_circle_is_found(tmp_path: Path):
    for top in LAYERS:
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text("")
    (tmp_path / "eval" / "a.py").write_text("from eval import b\n")
    (tmp_path / "eval" / "b.py").write_text("def f():\n    from eval.a import x\n")
    assert circles(import_graph(tmp_path)) == [["eval.a", "eval.b"]]
