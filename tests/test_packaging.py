"""Packaging checks that need no build: the spec's contents, the bundled resources, the project
metadata (the self-test itself: tests/tools/test_selftest.py)."""
from __future__ import annotations

import ast
import struct

from conftest import REPO_ROOT

ROOT = REPO_ROOT
SPEC = ROOT / "packaging" / "p2p-attendance.spec"
RESOURCES = ROOT / "resources"


def _spec_constants() -> dict:
    """The spec's literal top-level assignments (it is Python; it is not executed here)."""
    tree = ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                found[node.targets[0].id] = ast.unparse(node.value)
    return found


def test_spec_parses_and_excludes_the_test_extras():
    constants = _spec_constants()
    excludes = set(constants["EXCLUDES"])
    for package in ("pytest", "_pytest", "pytestqt", "skimage", "matplotlib", "scipy", "tkinter", "_tkinter", "PIL"):
        assert package in excludes, package
    # The app runs on QtCore/QtGui/QtWidgets, and QtNetwork for its one-copy-per-user guard.
    assert not {"QtCore", "QtGui", "QtWidgets", "QtNetwork"} & set(constants["QT_MODULES_UNUSED"])
    assert {"QtQml", "QtQuick", "QtWebEngineCore"} <= set(constants["QT_MODULES_UNUSED"])


def test_spec_collects_the_used_models_and_resources_only():
    constants = _spec_constants()
    assert constants["NAME"].startswith("p2p-attendance")
    assert set(constants["MODELS_USED"]) == {"shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat"}
    for name in constants["RESOURCES"]:
        assert (RESOURCES / name).is_file(), name
    text = SPEC.read_text(encoding="utf-8")
    assert 'collect_submodules("zeroconf")' in text
    assert '"main.py"' in text  # the entry point that calls multiprocessing.freeze_support()
    assert "exclude_binaries=True" in text and "COLLECT(" in text  # one folder (onedir)


def test_entry_point_calls_freeze_support_first():
    source = (ROOT / "main.py").read_text(encoding="utf-8")
    assert source.index("multiprocessing.freeze_support()") < source.index("from p2p_attendance.cli import")


def test_resources_are_small_and_valid():
    face = RESOURCES / "selftest_face.jpg"
    assert face.read_bytes()[:3] == b"\xff\xd8\xff" and face.stat().st_size <= 60 * 1024
    assert (RESOURCES / "icon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ico = (RESOURCES / "icon.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind) == (0, 1) and count >= 4
    assert "public domain" in (RESOURCES / "README.md").read_text(encoding="utf-8").lower()


def test_project_metadata_uses_the_spdx_license_form():
    """setuptools stops accepting `license = {text = ...}` on 2027-02-18; the SPDX string form
    (PEP 639) needs setuptools 77, and forbids License :: classifiers beside it."""
    import re
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    assert project["license"] == "MIT"
    assert all((ROOT / name).is_file() for name in project["license-files"])
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    (floor,) = [int(m.group(1)) for r in pyproject["build-system"]["requires"] if (m := re.fullmatch(r"setuptools>=(\d+)", r))]
    assert floor >= 77
    classifiers = project["classifiers"]
    assert classifiers and not any(c.startswith("License ::") for c in classifiers)
    assert "Programming Language :: Python :: 3.11" in classifiers and "Intended Audience :: Education" in classifiers
