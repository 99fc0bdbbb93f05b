"""Where the app keeps its files (platformdirs, so XDG_DATA_HOME and friends are honoured).

Every folder here is the user's alone (0700, fileio.private_dir), and so is every folder between
it and the one named after the app (the log dir is p2p-attendance/log on Linux)."""
import os
import sys
from pathlib import Path

import platformdirs

from p2p_attendance import APP_NAME
from p2p_attendance.fileio import private_dir


def _app_folder(path: Path) -> Path:
    if APP_NAME in path.parts:
        top = len(path.parts) - 1 - path.parts[::-1].index(APP_NAME)  # the innermost
        for depth in range(top + 1, len(path.parts)):
            private_dir(Path(*path.parts[:depth]))
    return private_dir(path)


def data_dir() -> Path:
    """The app's data folder (classes, checkpoints, reports, history)."""
    return _app_folder(Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)))


def classes_dir() -> Path:
    """Where the enrolled classes are kept."""
    return private_dir(data_dir() / "classes")


def checkpoints_dir() -> Path:
    """Where the requester's checkpoints (--resume) are kept."""
    return private_dir(data_dir() / "checkpoints")


def reports_dir() -> Path:
    """Where a report goes when it cannot be written where the teacher asked."""
    return private_dir(data_dir() / "reports")


def history_dir() -> Path:
    """Every finished report, per class (report/history.py): personal data, so private to the user."""
    return private_dir(data_dir() / "history")


def log_dir() -> Path:
    """Where the teacher's side writes its log files."""
    return _app_folder(Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)))


def resources_dir() -> Path:
    """The top-level resources/ folder: next to the package in a checkout, in _MEIPASS when frozen."""
    override = os.environ.get("P2P_ATTENDANCE_RESOURCES")
    if override:
        return Path(override)
    if getattr(sys, "frozen", False):
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"
