"""The layout rules of harness/ (issue 12): small modules, imports that follow the sample's path, one definition
of the shared constants. Each failure names the offending module, line and import."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"
# The path a sample takes, earliest first: a module may import its own stage and earlier ones only.
STAGES = ("core", "hf", "data", "video", "methods", "backbones", "vilamp", "model", "cost", "scoring", "run", "canary",
          "results", "interop", "bench")  # fmt: skip
# may import anything
ENTRY_POINTS = frozenset({"harness", "harness.__main__", "harness.cli", "harness.evaluate", "harness.sweep"})
MAX_LINES = 400
REMOVED_NAMES = re.compile(r"set_token_rows|_token_rows|_encoded")  # the grep: per-sample backbone state
ANSWERED = frozenset({"ok", "unparsed"})
ANSWERED_HOME = "harness/core/status.py"
LETTERS_HOME = "harness/core/records.py"


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported harness module
    line: int
    text: str  # the import statement as written

    def __str__(self) -> str:
        return f"{_path(self.source)}:{self.line} `{self.text}`"


@cache
def _modules() -> dict[str, Path]:
    """Dotted name → file of every module under harness/ (a package is its __init__.py)."""
    modules = {}
    for path in sorted(HARNESS.rglob("*.py")):
        parts = path.relative_to(HARNESS.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _path(module: str) -> str:
    return str(_modules()[module].relative_to(HARNESS.parent))


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse(_modules()[module].read_text(), filename=_path(module))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement at any depth (functions included), except those only a type checker runs."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    children = ast.iter_child_nodes(node)
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children = iter(node.orelse)  # the body runs only under a type checker
    for child in children:
        yield from _import_nodes(child)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The harness modules an import statement loads: `from pkg import name` is the submodule when one exists."""
    modules = _modules()
    if isinstance(node, ast.Import):
        for alias in node.names:
            prefixes = (alias.name.rsplit(".", n)[0] for n in range(alias.name.count(".") + 1))
            if (longest := next((p for p in prefixes if p in modules), None)) is not None:
                yield longest
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if modules[module].name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    for alias in node.names:
        if f"{base}.{alias.name}" in modules:
            yield f"{base}.{alias.name}"
        elif base in modules:
            yield base


@cache
def _imports() -> tuple[Import, ...]:
    found = []
    for module in _modules():
        for node in _import_nodes(_tree(module)):
            targets = dict.fromkeys(t for t in _targets(module, node) if t != module)
            found += [Import(module, t, node.lineno, ast.unparse(node)) for t in targets]
    return tuple(found)


def _stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def test_no_module_over_the_line_limit():
    long = {_path(m): n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(f"{p} ({n})" for p, n in sorted(long.items()))


def test_every_module_belongs_to_a_stage():
    strays = [_path(m) for m in _modules() if _stage(m) is None and m not in ENTRY_POINTS]
    assert not strays, f"modules outside the stages {STAGES} and the entry points: {strays}"


def test_no_import_from_a_later_stage():
    late = []
    for imp in _imports():
        source, target = _stage(imp.source), _stage(imp.target)
        if source is not None and (target is None or target > source):
            where = STAGES[target] if target is not None else "an entry point"
            late.append(f"{imp} ({STAGES[source]} imports {where})")
    assert not late, "imports from a later stage:\n" + "\n".join(late)


def _cycles() -> list[list[Import]]:
    """One cycle through each strongly connected component of the import graph (Tarjan, then a BFS back home)."""
    graph: dict[str, list[Import]] = {m: [] for m in _modules()}
    for imp in _imports():
        graph[imp.source].append(imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for imp in graph[node]:
            if imp.target not in index:
                visit(imp.target)
                low[node] = min(low[node], low[imp.target])
            elif imp.target in stack:
                low[node] = min(low[node], index[imp.target])
        if low[node] == index[node]:
            component = set()
            while (member := stack.pop()) != node:
                component.add(member)
            components.append(component | {node})

    for node in graph:
        if node not in index:
            visit(node)
    cycles = []
    for component in (c for c in components if len(c) > 1):
        home = min(component)
        paths: dict[str, list[Import]] = {home: []}
        frontier = [home]
        while frontier and not any(i.target == home for n in frontier for i in graph[n]):
            step = []
            for node in frontier:
                for imp in graph[node]:
                    if imp.target in component and imp.target not in paths:
                        paths[imp.target] = [*paths[node], imp]
                        step.append(imp.target)
            frontier = step
        closing = next(i for n in frontier for i in graph[n] if i.target == home)
        cycles.append([*paths[closing.source], closing])
    return cycles


def test_no_import_cycle():
    cycles = _cycles()
    assert not cycles, "import cycles:\n" + "\n".join(
        " -> ".join([c[0].source, *(i.target for i in c)]) + "\n  " + "\n  ".join(map(str, c)) for c in cycles
    )


def _files() -> Iterator[Path]:
    return (p for p in sorted(HARNESS.rglob("*")) if p.is_file() and "__pycache__" not in p.parts)


def test_no_per_sample_backbone_state():
    hits = [
        f"{path.relative_to(HARNESS.parent)}:{n}: {line.strip()}"
        for path in _files()
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if REMOVED_NAMES.search(line)
    ]
    assert not hits, f"{REMOVED_NAMES.pattern} found in harness/:\n" + "\n".join(hits)


def _nodes(module: str, kinds: type | tuple[type, ...]) -> list:
    """The AST nodes of `kinds` anywhere in `module`, in line order."""
    return sorted((n for n in ast.walk(_tree(module)) if isinstance(n, kinds)), key=lambda n: (n.lineno, n.col_offset))


def test_answered_statuses_have_one_definition():
    hits = [
        f"{_path(m)}:{node.lineno} `{ast.unparse(node)}`"
        for m in _modules()
        if _path(m) != ANSWERED_HOME
        for node in _nodes(m, (ast.Tuple, ast.List, ast.Set))
        if len(node.elts) == len(ANSWERED)
        and {e.value for e in node.elts if isinstance(e, ast.Constant)} == ANSWERED
    ]
    assert not hits, f"answered statuses {sorted(ANSWERED)} spelled out outside {ANSWERED_HOME}:\n" + "\n".join(hits)


def _binds_letters(node: ast.Assign | ast.AnnAssign) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return any(isinstance(t, ast.Name) and t.id == "LETTERS" for t in targets)


def test_letters_defined_once():
    definitions = [
        f"{_path(m)}:{node.lineno} `{ast.unparse(node)}`"
        for m in _modules()
        for node in _nodes(m, (ast.Assign, ast.AnnAssign))
        if _binds_letters(node)
    ]
    assert len(definitions) == 1 and definitions[0].startswith(f"{LETTERS_HOME}:"), (
        f"LETTERS must be defined once, in {LETTERS_HOME}; definitions: {definitions}"
    )


def test_test_file_names_are_unique():
    """tests/ has no __init__.py, so pytest imports each test file by its basename: two with one name collide."""
    seen: dict[str, list[str]] = {}
    for path in sorted(Path(__file__).parent.rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(Path(__file__).parent)))
    assert not {name: paths for name, paths in seen.items() if len(paths) > 1}
