"""Files and folders the app writes are its user's alone: folders 0700, files 0600.

What the teacher's copy keeps holds personal data: thumbnails and encodings of students,
checkpoints with the encodings of unknown people, run logs with names and addresses, reports
naming students. Everything it writes goes through these helpers, so nothing lands readable by
other accounts whatever the umask, and a file written over an old one (a key made by an older
version, a report replaced) takes the new mode instead of keeping the old one.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: str | os.PathLike[str]) -> Path:
    """`path` as a folder of mode 0700 (made if missing; an existing one is tightened)."""
    path = Path(path)
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    return path


def private_file(path: str | os.PathLike[str]) -> Path:
    """`path` as a file of mode 0600, made empty if missing, its content kept if not: for files
    another library opens itself (SQLite, logging)."""
    path = Path(path)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    os.chmod(path, PRIVATE_FILE)
    return path


def tighten(path: str | os.PathLike[str]) -> None:
    """An existing file made 0600 (one written by an older version); nothing when it is missing."""
    try:
        if os.stat(path).st_mode & 0o777 != PRIVATE_FILE:
            os.chmod(path, PRIVATE_FILE)
    except FileNotFoundError:
        pass


def write_private(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a fresh 0600 file beside `path`, flush it to disk, then move it into
    place: a crash or a full disk never leaves half a file where the last good one was, and the
    result is 0600 even when it replaces a file of another mode. A missing folder is made 0700."""
    target = Path(path)
    target.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE))
    try:
        os.chmod(tmp, PRIVATE_FILE)  # the umask can only remove bits; this makes it exact
        write(tmp)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def write_private_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes to path atomically, readable by the user alone (0600)."""
    return write_private(path, lambda tmp: tmp.write_bytes(data))
