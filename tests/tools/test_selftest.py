"""The self-test (tools/selftest.py): the same code the bundle runs for `p2p-attendance --self-test`,
run from source."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

RESOURCES = REPO_ROOT / "resources"


def test_resources_are_found_from_source_and_when_frozen(monkeypatch, tmp_path):
    from p2p_attendance import paths
    from p2p_attendance.tools import selftest

    assert selftest.resource_path("selftest_face.jpg") == RESOURCES / "selftest_face.jpg"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert paths.resources_dir() == tmp_path / "resources"
    with pytest.raises(selftest.SelfTestFailure, match="packaging error"):
        selftest.resource_path("selftest_face.jpg")


def test_selftest_isolation_restores_the_environment(tmp_path, monkeypatch):
    from p2p_attendance.tools import selftest

    monkeypatch.setenv("XDG_DATA_HOME", "/somewhere/real")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    with selftest.isolated_environment(tmp_path):
        assert os.environ["XDG_DATA_HOME"].startswith(str(tmp_path))
        assert os.environ["XDG_CACHE_HOME"].startswith(str(tmp_path))
    assert os.environ["XDG_DATA_HOME"] == "/somewhere/real"
    assert "XDG_CACHE_HOME" not in os.environ


@pytest.mark.slow
def test_selftest_passes_from_source(tmp_path):
    """The bundle's --self-test code path, from source, in its own process (it starts a volunteer)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    data_home = Path(env["XDG_DATA_HOME"])  # the conftest's per-test folder
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from p2p_attendance.tools.selftest import main; sys.exit(main())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "self-test passed" in result.stdout
    assert "present" in result.stdout and "12/12 frames" in result.stdout
    assert "[FAIL]" not in result.stdout
    assert not any(data_home.iterdir()), "the self-test wrote into the caller's data folder"
