"""Structure figures of the code base, measured the same way every time.

Counts: import circles (groups of modules that import each other, directly or round a loop;
imports inside functions count, `if TYPE_CHECKING:` ones do not), upward imports (a layer
importing one it may not: see LAYERS and docs/architecture.md), files over 500 lines
(declarative catalogue modules excepted) and functions over 80 lines outside tests,
`# type: ignore` comments that do not say why, and modules whose type errors mypy still
ignores (the list in pyproject.toml).

Run: .venv/bin/python bench/structure.py  (prints figures, writes bench/results/structure.json)
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import tempfile
import tokenize
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "structure.json"
PACKAGES = ("tunerdeck_common", "registry", "state", "trainer", "app")
# Which project packages each package may import (besides itself).
LAYERS: dict[str, frozenset[str]] = {
    "tunerdeck_common": frozenset(),
    "registry": frozenset({"tunerdeck_common"}),
    "state": frozenset({"registry", "tunerdeck_common"}),
    "trainer": frozenset({"registry", "tunerdeck_common"}),
    "app": frozenset({"registry", "state", "tunerdeck_common"}),
}
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
DECLARATIVE = ("registry/catalogue/",)  # field tables: long by nature, no logic to split
_IGNORE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?(.*)$")


def _files(tops: tuple[str, ...]) -> Iterator[Path]:
    for top in tops:
        yield from sorted((ROOT / top).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Modules named by the import statements of a file (TYPE_CHECKING blocks left out)."""
    found: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def _graph() -> tuple[dict[str, set[str]], dict[str, Path]]:
    paths = {_module_name(p): p for p in _files(PACKAGES)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        targets = _imports(tree, name, path.name == "__init__.py")
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph, paths


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return sorted(groups)


def _upward(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for name, targets in sorted(graph.items()):
        top = name.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other != top and other not in LAYERS[top]:
                found.append(f"{name} -> {target}")
    return found


def _long_files(paths: dict[str, Path]) -> list[str]:
    found = []
    for path in sorted(paths.values()):
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES and not rel.startswith(DECLARATIVE):
            found.append(f"{rel} ({lines} lines)")
    return found


def _long_functions() -> list[str]:
    found = []
    for path in _files((*PACKAGES, "bench")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    rel = path.relative_to(ROOT).as_posix()
                    found.append(f"{rel}:{node.lineno} {node.name} ({length} lines)")
    return found


def _silent_ignores() -> list[str]:
    """`# type: ignore` without an error code, or without a word of why after it."""
    found = []
    for path in _files((*PACKAGES, "tests", "bench")):
        with path.open("rb") as handle:
            comments = [t for t in tokenize.tokenize(handle.readline) if t.type == tokenize.COMMENT]
        for token in comments:
            match = _IGNORE.search(token.string)
            if match and (not match.group(1) or not match.group(2).strip(" #-:")):
                found.append(f"{path.relative_to(ROOT).as_posix()}:{token.start[0]}")
    return found


def _unchecked_modules() -> list[str]:
    """Modules whose type errors mypy is told to ignore (pyproject.toml)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found: list[str] = []
    for override in config.get("tool", {}).get("mypy", {}).get("overrides", []):
        if override.get("ignore_errors"):
            modules = override.get("module", [])
            found += [modules] if isinstance(modules, str) else modules
    return sorted(found)


def measure() -> dict[str, list[str] | list[list[str]]]:
    graph, paths = _graph()
    return {
        "import_circles": _cycles(graph),
        "upward_imports": _upward(graph),
        "files_over_500_lines": _long_files(paths),
        "functions_over_80_lines": _long_functions(),
        "type_ignores_without_reason": _silent_ignores(),
        "modules_mypy_ignores": _unchecked_modules(),
    }


def main() -> int:
    figures = measure()
    for key, items in figures.items():
        print(f"{key}: {len(items)}")
        for item in items:
            print(f"    {' <-> '.join(item) if isinstance(item, list) else item}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({k: len(v) for k, v in figures.items()} | {"details": figures}, out, indent=1)
    os.replace(tmp, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
