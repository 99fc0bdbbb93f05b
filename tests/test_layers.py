"""The import order of the package (docs/architecture.md, "Layers"), read from the source with ast.

    foundations (errors, host, paths, fileio, peertext, logs, lab_defaults)
      <- attendance <- compute <- {roster, report, discovery} <- swarm <- {job, checkpoint} <- {cli, gui}

A module imports only from its own layer or those below it; imports inside functions count too
(a lazy import is still a dependency). tools/ may import anything except gui/ (but gui/selfcheck.py,
the GUI's part of --self-test); nothing in the product imports tools/ except cli.py (its bench,
demo and --self-test entry points). PySide6 is imported only under gui/, dlib only in
compute/engine.py (and in tools/, whose reference loop on plain dlib measures the engine).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PACKAGE = "p2p_attendance"
PACKAGE_DIR = REPO_ROOT / PACKAGE

FOUNDATIONS = ("", "errors", "host", "paths", "fileio", "peertext", "logs", "lab_defaults")
# Lowest first: each entry is one layer, a tuple of the top-level modules or sub-packages in it.
LAYERS = (
    FOUNDATIONS,
    ("attendance",),
    ("compute",),
    ("roster", "report", "discovery"),
    ("swarm",),
    ("job", "checkpoint"),
    ("cli", "__main__", "gui"),
)
TOOLS = "tools"
# The product modules allowed to import tools/: the command line's bench, demo and --self-test.
TOOL_USERS = ("cli",)
# The one gui module tools/ may import: the GUI's part of --self-test (Qt starts, loads the icon).
GUI_FOR_TOOLS = (f"{PACKAGE}.gui.selfcheck",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def top_part(module: str) -> str:
    """The layer key of a p2p_attendance module: its first part below the package ('' for the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    top = top_part(module)
    for rank, members in enumerate(LAYERS):
        if top in members:
            return rank
    raise AssertionError(f"{module} is in no layer: add its top-level name to LAYERS in tests/test_layers.py")


def _submodules(target: str, names) -> list[str]:
    """`from p2p_attendance import paths` imports the module p2p_attendance.paths: name it too."""
    if target.split(".")[0] != PACKAGE:
        return []
    folder = PACKAGE_DIR.joinpath(*target.split(".")[1:])
    return [f"{target}.{a.name}" for a in names if (folder / f"{a.name}.py").is_file() or (folder / a.name / "__init__.py").is_file()]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, sub) for sub in _submodules(target, node.names)]
    return found


MODULES = sorted(PACKAGE_DIR.rglob("*.py"))


def describe(path: Path, line: int, what: str) -> str:
    return f"{path.relative_to(REPO_ROOT)}:{line} imports {what}"


def test_every_module_is_parsed():
    assert len(MODULES) > 50 and all(m.is_file() for m in MODULES)


def test_lower_layers_never_import_higher_ones():
    wrong = []
    for path in MODULES:
        name = module_name(path)
        if top_part(name) == TOOLS:
            continue
        own = layer_of(name)
        for line, target in imports_of(path):
            if target.split(".")[0] != PACKAGE or top_part(target) == TOOLS:
                continue
            if layer_of(target) > own:
                wrong.append(describe(path, line, f"{target} (layer {layer_of(target)} above its own {own}: {', '.join(LAYERS[own]) or 'foundations'})"))
    assert wrong == [], "imports against the layer order:\n" + "\n".join(wrong)


def test_the_product_imports_tools_only_from_the_command_line():
    wrong = [
        describe(path, line, target)
        for path in MODULES
        if top_part(module_name(path)) not in (TOOLS, *TOOL_USERS)
        for line, target in imports_of(path)
        if target.split(".")[:2] == [PACKAGE, TOOLS]
    ]
    assert wrong == [], "product code importing tools/:\n" + "\n".join(wrong)


def test_tools_never_import_the_gui():
    wrong = [
        describe(path, line, target)
        for path in MODULES
        if top_part(module_name(path)) == TOOLS
        for line, target in imports_of(path)
        if target.split(".")[:2] == [PACKAGE, "gui"] and target not in GUI_FOR_TOOLS
    ]
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("PySide6", lambda name: top_part(name) == "gui"),
        ("dlib", lambda name: name == f"{PACKAGE}.compute.engine" or top_part(name) == TOOLS),
    ],
    ids=["Qt only in gui", "dlib only in compute.engine"],
)
def test_a_heavy_library_is_imported_in_one_place(library, allowed):
    wrong = [
        describe(path, line, target)
        for path in MODULES
        if not allowed(module_name(path))
        for line, target in imports_of(path)
        if target.split(".")[0] == library
    ]
    assert wrong == [], "\n".join(wrong)


def test_the_layer_check_sees_lazy_and_relative_imports():
    """The checker itself: an import inside a function, and a relative one, are both found."""
    package = PACKAGE_DIR / "discovery"
    found = dict((target, line) for line, target in imports_of(package / "__init__.py"))
    assert f"{PACKAGE}.discovery.mdns" in found
    lazy = [target for _, target in imports_of(PACKAGE_DIR / "cli.py")]
    assert f"{PACKAGE}.tools.bench" in lazy  # imported inside cmd_bench only
