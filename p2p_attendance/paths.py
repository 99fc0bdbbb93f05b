"""Where the app keeps its files (platformdirs, so XDG_DATA_HOME and friends are honoured)."""
import os
from pathlib import Path

import platformdirs

from p2p_attendance import APP_NAME


def data_dir() -> Path:
    path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def classes_dir() -> Path:
    path = data_dir() / "classes"
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoints_dir() -> Path:
    path = data_dir() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def private_dir(path: Path) -> Path:
    """Make path (and missing parents) a folder only this user may enter (0700), also if it existed."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name == "posix":
        os.chmod(path, 0o700)
    return path


def history_dir() -> Path:
    """Every finished report, per class (report/history.py): personal data, so private to the user."""
    return private_dir(data_dir() / "history")


def log_dir() -> Path:
    path = Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path
