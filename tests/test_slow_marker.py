"""The slow marker by location (conftest.SLOW_MODULES): every test that starts a process is slow,
so `pytest -m "not slow"` never waits on a child process."""
import ast
from pathlib import Path

from conftest import SLOW_MODULES, TESTS_DIR, slow_module

# What starts a process in a test module: subprocess, multiprocessing, the interpreter itself, or a
# conftest helper's volunteer process (RunningJob.volunteer).
PROCESS_NAMES = {"subprocess", "multiprocessing", "Popen", "executable"}
PROCESS_METHODS = {"volunteer"}


def _names(node: ast.AST) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
    return found


def _starts_process_directly(node: ast.AST) -> bool:
    if _names(node) & PROCESS_NAMES:
        return True
    return any(
        isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr in PROCESS_METHODS
        for sub in ast.walk(node)
    )


def _is_slow_mark(decorator: ast.AST) -> bool:
    return "slow" in _names(decorator)


def unmarked_process_tests(path: Path) -> list[str]:
    """The tests of a module that start a process (themselves, through the module's own helpers and
    fixtures, or its constants such as APP = [sys.executable, ...]) but are not marked slow."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if slow_module(path) or any(
        isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in n.targets) and _is_slow_mark(n.value)
        for n in tree.body
    ):
        return []
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    constants = {
        t.id for n in tree.body if isinstance(n, ast.Assign) and _starts_process_directly(n.value) for t in n.targets if isinstance(t, ast.Name)
    }
    starters = {name for name, fn in functions.items() if _starts_process_directly(fn) or _names(fn) & constants}
    while True:  # helpers that call helpers (or take fixtures) that start processes
        more = {name for name, fn in functions.items() if name not in starters and _names(fn) & starters}
        if not more:
            break
        starters |= more
    return sorted(
        name for name in starters
        if name.startswith("test_") and not any(_is_slow_mark(d) for d in functions[name].decorator_list)
    )


def test_every_test_that_starts_a_process_is_marked_slow():
    unmarked = {
        path.relative_to(TESTS_DIR).as_posix(): names
        for path in sorted(TESTS_DIR.rglob("test_*.py"))
        if (names := unmarked_process_tests(path))
    }
    assert unmarked == {}, f"start processes but are not slow (add the module to conftest.SLOW_MODULES): {unmarked}"


def test_every_slow_module_exists():
    missing = sorted(name for name in SLOW_MODULES if not (TESTS_DIR / name).is_file())
    assert missing == [], f"conftest.SLOW_MODULES names modules that are gone: {missing}"


def test_the_collection_hook_marks_a_listed_module_slow(pytester):
    """The hook itself, on a throwaway test tree with the project's conftest."""
    pytester.makeconftest((TESTS_DIR / "conftest.py").read_text(encoding="utf-8").replace(
        "TESTS_DIR = Path(__file__).resolve().parent",
        "TESTS_DIR = Path(__file__).resolve().parent\nSLOW_MODULES = frozenset({'listed/test_listed_as_slow.py'})",
    ))
    pytester.makepyfile(**{"listed/test_listed_as_slow": "def test_x():\n    pass\n", "test_not_listed": "def test_y():\n    pass\n"})
    result = pytester.runpytest("-m", "not slow", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=1)
