"""The package's shape: no import cycles, no reaching into private members, private modules
private in fact.

These read the source (``ast``), so they fail on the line that breaks a rule, before anything
runs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import sessionkit
from sessionkit.backends.base import Backend

PACKAGE = Path(sessionkit.__file__).parent
ROOT = PACKAGE.parent

#: Import edges that close a cycle today and are being removed by their owners. Each is
#: ``(importer, imported)``; remove an entry when its cycle goes.
KNOWN_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()

#: Private members the package may use across modules: the backend contract's primitives
#: (every ``_``-prefixed method of :class:`Backend`), which sessionkit's layers drive.
BACKEND_PRIMITIVES = frozenset(
    name for name in dir(Backend) if name.startswith("_") and not name.startswith("__")
)

#: Modules checked for reaching into private members: the core and the command line (the
#: backends and the emulator implement the contract and have their own tests).
CHECKED = [
    path
    for path in sorted(PACKAGE.rglob("*.py"))
    if path.relative_to(PACKAGE).parts[0] not in ("backends", "testing")
]

#: ``(module, name)`` private names imported across modules that are known and being removed.
KNOWN_PRIVATE_IMPORTS = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that runs: ``if TYPE_CHECKING:`` blocks left out, function bodies kept."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports(name: str, path: Path) -> dict[str, int]:
    """The package's modules ``name`` imports when it runs (lazy imports too), with a line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in runtime_nodes(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.append(submodule if submodule in MODULES else source)
        for target in targets:
            if target in MODULES and target != name:
                found.setdefault(target, node.lineno)
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycles() -> None:
    edges = {name: imports(name, path) for name, path in MODULES.items()}
    graph = {
        name: {target for target in found if (name, target) not in KNOWN_CYCLE_EDGES}
        for name, found in edges.items()
    }
    found = cycles(graph)
    described = [
        " <-> ".join(component)
        + ": "
        + "; ".join(
            f"{a} imports {b} (line {edges[a][b]})"
            for a in component
            for b in sorted(graph[a])
            if b in component
        )
        for component in found
    ]
    assert not found, "import cycles:\n" + "\n".join(described)


def private_accesses(path: Path) -> Iterator[tuple[int, str]]:
    """Where a module uses another object's ``_``-prefixed member, or imports a private name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # Names the module itself defines may be used on its own objects anywhere in it.
    own = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    } | {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("self", "cls")
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or name.startswith("__"):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if name in BACKEND_PRIMITIVES or name in own:
                continue
            yield node.lineno, f"{ast.unparse(node)}"
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if not alias.name.startswith("_") or alias.name.startswith("__"):
                    continue
                if f"{node.module}.{alias.name}" in MODULES:
                    continue  # a private module of the package, imported inside it
                if (module_name(path), alias.name) in KNOWN_PRIVATE_IMPORTS:
                    continue
                yield node.lineno, f"from {node.module} import {alias.name}"


@pytest.mark.parametrize("path", CHECKED, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_reaches_into_another_objects_private_members(path: Path) -> None:
    found = [f"{path.name}:{line}: {what}" for line, what in private_accesses(path)]
    assert not found, "private members used from outside:\n" + "\n".join(found)


def test_the_private_access_check_can_fail(tmp_path: Path) -> None:
    module = tmp_path / "offender.py"
    module.write_text(
        "def f(session):\n    return session._usage_looked_up, session.implementation._describe\n",
        encoding="utf-8",
    )
    assert [what for _, what in private_accesses(module)] == ["session._usage_looked_up"]


#: Files outside the package that may import a private module (none: the redaction and
#: Spark Connect helpers are the public modules ``sessionkit.redaction`` and
#: ``sessionkit.spark_connect``). Nothing outside the package imports a ``_``-prefixed module.
KNOWN_PRIVATE_IMPORTERS: frozenset[str] = frozenset()

_PRIVATE_IMPORT = re.compile(
    r"(?:\bimport\s+sessionkit(?:\.\w+)*\._[a-z]\w*|\bfrom\s+sessionkit(?:\.\w+)*\._[a-z]\w*\s+import"
    r"|\bfrom\s+sessionkit(?:\.\w+)*\s+import\s+(?:\([^)]*?|[^\n]*?)\b_[a-z]\w*)"
)


def outside_files() -> Iterator[Path]:
    for folder in ("tests", "docs", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".md") and path.is_file():
                yield path
    for name in ("noxfile.py", "README.md"):
        if (ROOT / name).is_file():
            yield ROOT / name


def test_nothing_outside_the_package_imports_a_private_module() -> None:
    offenders = []
    for path in outside_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative in KNOWN_PRIVATE_IMPORTERS or relative == "tests/core/test_architecture.py":
            continue
        for match in _PRIVATE_IMPORT.finditer(path.read_text(encoding="utf-8")):
            offenders.append(f"{relative}: {' '.join(match.group(0).split())}")
    assert not offenders, "imports of private modules:\n" + "\n".join(offenders)


def test_the_public_api_is_defined_in_public_modules() -> None:
    # A name users import from sessionkit is defined in a module without a leading underscore.
    for name in sessionkit.__all__:
        value = getattr(sessionkit, name)
        module = getattr(value, "__module__", None)
        if module is None or not isinstance(module, str) or not module.startswith("sessionkit"):
            continue  # constants and submodules
        assert not any(part.startswith("_") for part in module.split(".")), (name, module)
