"""The command line is built on the SDK's public names only, as a user's own tool would be.

Every module of ``evolink_async/cli/`` may import its own siblings and any public module of the
SDK (``evolink_async``, ``.batch``, ``.errors``, ``.checks``, ``.metrics``, ``.sandbox``), never a
private (underscore) module outside ``cli/``: what the CLI needs, a user can have too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import evolink_async

PACKAGE = Path(evolink_async.__file__).parent
CLI = PACKAGE / "cli"


def _private(module: str) -> bool:
    """``evolink_async._core.checks`` is; ``evolink_async.sandbox.__main__`` (a dunder) is not."""
    return any(part.startswith("_") and not part.startswith("__") for part in module.split(".")[1:])


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def imported_modules(source: str, package: str = "evolink_async.cli") -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``source`` (a module of ``package``), at any depth,
    relative ones resolved; ``from X import name`` counts ``X.name`` too where that is a module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                module = ".".join([*parts[: len(parts) - node.level + 1], *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names if _is_module(f"{module}.{a.name}")]
    return found


def private_imports(source: str, name: str) -> list[str]:
    return [
        f"{name}:{line}: {module}"
        for line, module in imported_modules(source)
        if module.startswith("evolink_async.") and not module.startswith("evolink_async.cli") and _private(module)
    ]


def test_the_cli_imports_no_private_module_outside_cli() -> None:
    offenders = [
        offender
        for path in sorted(CLI.glob("*.py"))
        for offender in private_imports(path.read_text(encoding="utf-8"), f"cli/{path.name}")
    ]
    assert offenders == []


def test_the_rule_finds_private_imports_at_any_depth() -> None:
    source = (
        "from ._progress import Reporter\n"  # a sibling: allowed
        "from .. import EvolinkClient, _version\n"  # a private module imported by name
        "from ..batch import Batch\n"
        "def later():\n"
        "    from .._core.checks import SCALE\n"  # inside a function: it runs too
        "    import evolink_async.batch._run\n"
        "from ..sandbox.__main__ import main\n"  # a dunder module is public
    )
    assert private_imports(source, "m.py") == [
        "m.py:2: evolink_async._version",
        "m.py:5: evolink_async._core.checks",
        "m.py:6: evolink_async.batch._run",
    ]
