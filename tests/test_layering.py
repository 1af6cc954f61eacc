"""The package's layers, checked from its source: no runtime import cycle, imports only go down.

Imports inside ``if TYPE_CHECKING:`` are left out (they never run); imports inside functions are
kept, since they run too, only later.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import evolink_async

PACKAGE = Path(evolink_async.__file__).parent
TESTS = Path(__file__).parent

# Lower number = lower layer. A module may import its own layer or any lower one.
LAYERS = {
    "errors": 0, "_version": 0,
    "_core": 1,
    "_models": 2,
    "_files": 3,
    "_protocols": 4,
    "_watching": 5,
    "_callbacks": 6,
    "_clients": 7,
    "batch": 8,
    "cli": 9, "sandbox": 9, "_relay": 9, "testing": 9, "__init__": 9, "__main__": 9,
    "checks": 9, "metrics": 9,  # public views of _core for tools built on the SDK (the CLI is one)
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path) -> set[str]:
    """The ``evolink_async`` modules that ``path`` imports when it runs."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("evolink_async"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("evolink_async"):
                found.add(target)
                # ``from . import _commands`` imports a submodule, not a name.
                found.update(f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    # A module's own packages are already being imported when it runs (``from . import _png``).
    return {target for target in found if not (name == target or name.startswith(target + "."))}


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): runtime_imports(path) for path in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS[top]


def test_every_module_belongs_to_a_layer() -> None:
    unplaced = sorted(m for m in import_graph() if [*m.split("."), "__init__"][1] not in LAYERS)
    assert unplaced == []


def test_no_runtime_import_cycle() -> None:
    graph = import_graph()
    # Importing a.b.c runs a.b's __init__ first: an edge to a.b.c is also an edge to a.b, unless
    # a.b is the importer's own package (or above it), which is already running by then.
    for module, targets in graph.items():
        for target in list(targets):
            parts = target.split(".")
            parents = (".".join(parts[:i]) for i in range(2, len(parts)))
            targets.update(p for p in parents if not (module == p or module.startswith(p + ".")))
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    # The package's own __init__ is the root that re-exports everything: a module reaching back
    # up to it would be a cycle, and is reported like any other.
    assert cycles == []


def test_imports_only_go_down() -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if target != "evolink_async" and layer_of(target) > layer_of(module)
    )
    assert upward == []


def test_watching_knows_protocols_only_through_the_seam() -> None:
    """A second protocol is added without touching the watching layer."""
    reached = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module.startswith("evolink_async._watching")
        for target in targets
        if target.startswith(("evolink_async._protocols.", "evolink_async._clients"))
        and target != "evolink_async._protocols.task_api"
    )
    assert reached == []


def test_the_sandbox_protocols_share_only_the_core() -> None:
    """sandbox/evolink/ and sandbox/midjourney/ each import the shared core beside them, never each other."""
    sides = ("evolink_async.sandbox.evolink", "evolink_async.sandbox.midjourney")
    graph = import_graph()
    assert all(any(m.startswith(side + ".") for m in graph) for side in sides)
    crossing = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for side, other in (sides, sides[::-1])
        if module.startswith(side + ".")
        for target in targets
        if target == other or target.startswith(other + ".")
    )
    assert crossing == []


def imported_tests_modules(path: Path, root: Path) -> set[str]:
    """The ``tests`` modules a file under ``root`` (the ``tests`` folder) imports, relative ones resolved."""
    package = ["tests", *path.parent.relative_to(root).parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            # ``from . import helper`` imports a module, not a name.
            found.update(
                f"{target}.{alias.name}" for alias in node.names if _is_module_under(root.parent, f"{target}.{alias.name}")
            )
    return {name for name in found if name == "tests" or name.startswith("tests.")}


def _is_module_under(top: Path, name: str) -> bool:
    relative = Path(*name.split("."))
    return (top / relative).with_suffix(".py").exists() or (top / relative / "__init__.py").exists()


def forbidden_test_imports(root: Path) -> list[str]:
    """Test modules and conftests that import a test module, or a private module outside tests/helpers."""
    found = []
    for path in sorted([*root.rglob("test_*.py"), *root.rglob("conftest.py")]):
        for name in sorted(imported_tests_modules(path, root)):
            parts = name.split(".")
            imports_a_test = any(part.startswith("test_") for part in parts)
            private = any(part.startswith("_") for part in parts) and parts[:2] != ["tests", "helpers"]
            if imports_a_test or private:
                found.append(f"{path.relative_to(root.parent)} -> {name}")
    return found


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in conftest.py or tests/helpers/: a test module never imports another
    test module (it would run that module's tests' imports, and tie two subjects together), nor a
    private ``_helper`` module hidden beside the tests."""
    assert forbidden_test_imports(TESTS) == []


def test_the_test_import_rule_sees_what_it_forbids(tmp_path: Path) -> None:
    root = tmp_path / "tests"
    (root / "area").mkdir(parents=True)
    for name in ("__init__.py", "conftest.py", "area/__init__.py", "area/_support.py", "area/test_a.py"):
        (root / name).write_text("")
    (root / "helpers").mkdir()
    (root / "helpers" / "__init__.py").write_text("")
    (root / "helpers" / "_private.py").write_text("")
    (root / "area" / "test_b.py").write_text(
        "from .test_a import x\nfrom tests.area._support import y\nfrom . import _support\n"
        "from tests.helpers._private import z\nfrom ..conftest import w\nimport json\n"
        "from tests._gone import v\n"  # a private module that no longer exists is still named
    )
    assert forbidden_test_imports(root) == [
        "tests/area/test_b.py -> tests._gone",
        "tests/area/test_b.py -> tests.area._support",
        "tests/area/test_b.py -> tests.area.test_a",
    ]


def test_the_walk_sees_runtime_imports_only() -> None:
    """The walk finds real imports (so the checks above can fail) and skips TYPE_CHECKING ones."""
    a = PACKAGE / "_core" / "transport.py"
    imports = runtime_imports(a)
    assert "evolink_async._core.retry" in imports
    assert "evolink_async.errors" in imports
    # TYPE_CHECKING imports are skipped: errors.py imports Task only for type checking.
    assert "evolink_async._models.task" not in runtime_imports(PACKAGE / "errors.py")


@pytest.mark.parametrize("name", evolink_async.__all__)
def test_every_public_name_imports(name: str) -> None:
    module = importlib.import_module("evolink_async")
    assert getattr(module, name) is not None
    namespace: dict[str, object] = {}
    exec(f"from evolink_async import {name}", namespace)
    assert name in namespace


def test_import_stays_light() -> None:
    """``import evolink_async`` loads neither the batch and its journal (sqlite3) nor the sandbox."""
    code = (
        "import sys, evolink_async; "
        "print(','.join(sorted(m for m in sys.modules if m == 'sqlite3' "
        "or m.startswith(('evolink_async.batch', 'evolink_async.sandbox', 'evolink_async.cli')))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""
    code = "import sys, evolink_async; evolink_async.BatchSpec; print('sqlite3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "True"
