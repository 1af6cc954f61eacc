"""What a newcomer meets first: pyproject.toml names only files that exist, the license is there,
the README's install section covers every extra, and git ignores what the demo leaves behind."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

from evolink_async.cli._args import build_parser

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def test_every_file_pyproject_names_exists() -> None:
    hatch = PYPROJECT["tool"]["hatch"]
    named = [PROJECT["readme"], hatch["version"]["path"], *hatch["build"]["targets"]["wheel"]["packages"]]
    named += PROJECT.get("license-files", [])
    missing = [name for name in named if not (ROOT / name).exists()]
    assert missing == []


def test_every_entry_point_names_an_importable_module() -> None:
    targets = [*PROJECT["scripts"].values()]
    for group in PROJECT.get("entry-points", {}).values():
        targets += group.values()
    for target in targets:
        module = target.partition(":")[0]
        assert importlib.util.find_spec(module) is not None, target


def test_the_declared_mit_license_is_in_the_repository() -> None:
    assert PROJECT["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert re.search(r"Copyright \(c\) \d{4} evolink_async developers", text)


def test_project_urls_are_https_links() -> None:
    urls = PROJECT["urls"]
    assert urls
    assert all(url.startswith("https://") for url in urls.values()), urls


def test_the_readme_starts_with_pip_install_and_names_every_extra() -> None:
    readme = (ROOT / "README.md").read_text()
    install = readme.index("pip install evolink-async")
    assert install < readme.index("## Quickstart")  # before any code: how to get it comes first
    public_extras = [name for name in PROJECT["optional-dependencies"] if name != "dev"]
    for extra in public_extras:
        assert re.search(rf'pip install "evolink-async\[[a-z,]*\b{extra}\b', readme), f"extra [{extra}]"


def test_git_ignores_what_the_demo_leaves_in_the_working_directory() -> None:
    demo_dir = build_parser().parse_args(["demo"]).dir  # where `evolink demo` writes without --dir
    patterns = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()]
    assert demo_dir.strip("./") + "/" in patterns
    assert "__pycache__/" in patterns
