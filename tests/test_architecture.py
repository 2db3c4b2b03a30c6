"""The layers of docs/architecture.md, checked against every module's imports.

Each module of generator/src/devbox is parsed with `ast` (it is not imported); its imports
of devbox modules, wherever they stand (top level, under TYPE_CHECKING, inside a function),
are its dependencies. The contracts:
- a module imports only its own layer and the layers below it (LAYERS, lowest first);
- the module graph has no cycle;
- function-local imports exist only in the command line, for start-up speed, and say so;
- only tools/process.py runs programs (imports subprocess), only volume.py reaches a user's
  volume (podman's mountpoint of it, switching to the user's uid);
- the command line imports no tool, so every program it causes to run goes through a library
  function.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "generator" / "src" / "devbox"

# Lowest first. A module belongs to the first layer whose prefix its name starts with.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "devbox.errors",
            "devbox.clock",
            "devbox.escaping",
            "devbox.wording",
            "devbox.rules",
            "devbox.write",
            "devbox.timings",
        ),
    ),
    ("tools", ("devbox.tools",)),
    ("volume", ("devbox.volume",)),
    ("declare", ("devbox.declare",)),
    ("container", ("devbox.container",)),
    ("host", ("devbox.host",)),
    ("lifecycle", ("devbox.lifecycle",)),
    ("runtime", ("devbox.runtime",)),
    ("cli", ("devbox.cli",)),
    ("entry points", ("devbox.privileged", "devbox.__main__")),
]
PACKAGE_ROOT = "devbox"  # the package's __init__: a docstring, imports nothing


@dataclass(frozen=True)
class Import:
    """One import of a devbox module by another."""

    module: str  # the importing module
    target: str  # the imported module
    line: int
    local: bool  # inside a function
    text: str  # the source line, with its comment


def module_name(path: Path, root: Path = SOURCE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = SOURCE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _targets(node: ast.Import | ast.ImportFrom, module: str, known: set[str]) -> list[str]:
    """The devbox modules one import statement names (`from devbox.x import y` names
    devbox.x.y when that is a module, else devbox.x)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "devbox"]
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        package = module.split(".")[: -node.level] if not module.endswith("__init__") else []
        base = ".".join([*package, base] if base else package)
    if base.split(".")[0] != "devbox":
        return []
    found = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        found.append(candidate if candidate in known else base)
    return found


def imports(path: Path, module: str, known: set[str]) -> list[Import]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    found: list[Import] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend(
                    Import(module, target, child.lineno, local, lines[child.lineno - 1])
                    for target in _targets(child, module, known)
                )
            is_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            visit(child, local or is_function)

    visit(tree, local=False)
    return found


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} belongs to no layer of docs/architecture.md; add it")


def all_imports(root: Path = SOURCE) -> list[Import]:
    found = modules(root)
    known = set(found)
    return [item for name, path in found.items() for item in imports(path, name, known)]


def layer_violations(edges: list[Import]) -> list[str]:
    return [
        f"{e.module} ({LAYERS[layer_of(e.module)][0]}) imports {e.target} "
        f"({LAYERS[layer_of(e.target)][0]}), a layer above it (line {e.line})"
        for e in edges
        if e.module != PACKAGE_ROOT and layer_of(e.target) > layer_of(e.module)
    ]


def cycles(edges: list[Import]) -> list[list[str]]:
    """Every cycle's modules, one list per strongly connected component (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.target != e.module and not e.target.startswith(e.module + "."):
            graph.setdefault(e.module, set()).add(e.target)
            graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def local_import_violations(edges: list[Import]) -> list[str]:
    bad = []
    for e in edges:
        if not e.local:
            continue
        if layer_of(e.module) != layer_of("devbox.cli"):
            bad.append(f"{e.module} line {e.line}: a function-local import outside cli/")
        elif "--help" not in e.text and "start-up" not in e.text:
            bad.append(f"{e.module} line {e.line}: a function-local import that does not say why")
    return bad


def _calls(path: Path, attribute: str) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.Attribute) and node.attr == attribute for node in ast.walk(tree)
    )


def _imports_stdlib(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == name for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == name:
            return True
    return False


def test_every_module_has_a_layer() -> None:
    for name in modules():
        if name != PACKAGE_ROOT:
            layer_of(name)


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert layer_violations(all_imports()) == []


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(all_imports()) == []


def test_function_local_imports_only_in_the_cli_for_start_up_speed() -> None:
    assert local_import_violations(all_imports()) == []


def test_the_cli_runs_no_program_itself() -> None:
    tools = layer_of("devbox.tools.process")
    cli = [e for e in all_imports() if layer_of(e.module) == layer_of("devbox.cli")]
    assert [f"{e.module} imports {e.target}" for e in cli if layer_of(e.target) == tools] == []


def test_only_process_runs_programs() -> None:
    runs = [name for name, path in modules().items() if _imports_stdlib(path, "subprocess")]
    assert runs == ["devbox.tools.process"]


def test_only_volume_reaches_a_users_volume() -> None:
    """Podman's mountpoint of a volume, and becoming its user, appear in volume.py alone."""
    for attribute in ("volume_mountpoint", "setresuid", "setgroups"):
        users = [
            name
            for name, path in modules().items()
            if _calls(path, attribute) and name != "devbox.tools.podman"
        ]
        assert users == ["devbox.volume"], attribute


def test_the_checks_catch_a_bad_import(tmp_path: Path) -> None:
    """The contracts fail on a tree that breaks them: an upward import, a cycle, a local import."""
    package = tmp_path / "devbox"
    for folder in ("tools", "declare", "lifecycle", "cli"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "tools" / "process.py").write_text("from devbox.declare import load\n")
    (package / "declare" / "load.py").write_text("from devbox.tools import process\n")
    (package / "lifecycle" / "policy.py").write_text(
        "def f():\n    from devbox.declare import load  # noqa: PLC0415\n"
    )
    (package / "cli" / "run.py").write_text(
        "def f():\n    from devbox.declare import load  # noqa: PLC0415\n"
    )
    edges = all_imports(package)
    assert layer_violations(edges) == [
        "devbox.tools.process (tools) imports devbox.declare.load (declare), "
        "a layer above it (line 1)"
    ]
    assert cycles(edges) == [["devbox.declare.load", "devbox.tools.process"]]
    assert local_import_violations(edges) == [
        "devbox.cli.run line 2: a function-local import that does not say why",
        "devbox.lifecycle.policy line 2: a function-local import outside cli/",
    ]


@pytest.mark.parametrize("name", ["devbox.cli", "devbox.privileged"])
def test_entry_points_exist(name: str) -> None:
    """generator/pyproject.toml's console scripts name these modules."""
    assert name in modules()
