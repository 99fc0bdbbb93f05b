import os
import sys
from pathlib import Path

import pytest

SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
needs_shared_faces = pytest.mark.skipif(not (SHARED_FACES / "enroll").is_dir(), reason="../shared/faces is not present")


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Nothing a test does lands in the real user's data, config or log folders."""
    home = tmp_path_factory.mktemp("user")
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        folder = home / var.lower()
        folder.mkdir()
        monkeypatch.setenv(var, str(folder))
    # mDNS in tests (and in every process they start) stays on loopback, never the real LAN.
    monkeypatch.setenv("P2P_ATTENDANCE_MDNS_INTERFACES", "127.0.0.1")
    yield


@pytest.fixture(scope="session")
def engine():
    from p2p_attendance.compute.engine import FaceEngine

    return FaceEngine()


@pytest.fixture(scope="session")
def sample_faces():
    from p2p_attendance.compute.video import read_image_rgb
    from p2p_attendance.demo import astronaut_path, grace_hopper_path

    return {"astronaut": read_image_rgb(astronaut_path()), "grace": read_image_rgb(grace_hopper_path())}


@pytest.fixture(scope="session")
def demo_material(tmp_path_factory, engine):
    """A 20-second composed class (two real faces, one absentee, one stranger) and its photos."""
    from p2p_attendance.demo import build_demo

    return build_demo(tmp_path_factory.mktemp("demo"), engine, duration_s=20)


def app_command():
    return [sys.executable, "-m", "p2p_attendance"]


def subprocess_env(tmp_path):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def child_env() -> dict:
    """Environment for a Python child that must import this checkout (discovery tests); the
    child chooses its mDNS interfaces itself."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("P2P_ATTENDANCE_MDNS_INTERFACES", None)
    return env
