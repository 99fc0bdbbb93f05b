"""A class's join code and its budget of wrong guesses, kept beside the class (join.json, 0600).

Students type the code once per class, not once per lecture: every job of the class uses the same
code until the teacher rotates it. The limit on guesses (the requester's AttemptLimiter) must
then hold across lectures too, or each new job would hand a guesser a fresh burst: the budget
left when a job ends is saved with the code and the next job starts from it. Rotating the code
resets the budget (guesses at the old code tell nothing about the new one).

A file of its own rather than a field of class.json: the running job saves the budget while the
teacher may be enrolling into the same class.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
from pathlib import Path

from p2p_attendance.fileio import write_private
from p2p_attendance.roster.store import class_dir

log = logging.getLogger(__name__)

FILE_NAME = "join.json"
_lock = threading.Lock()  # read-modify-write of one file: the GUI thread rotates while a job's writer saves


def new_join_code(digits: int = 6) -> str:
    """A fresh random join code of `digits` decimal digits (from the secrets module)."""
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def _path(class_name: str, root: Path | None) -> Path:
    return class_dir(class_name, root) / FILE_NAME


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    code = data.get("code")
    if not (isinstance(code, str) and code.isdigit() and 4 <= len(code) <= 32):
        return {}  # damaged: a new code (and budget) is safer than guessing what was meant
    budget = data.get("budget")
    return {"code": code, "budget": budget if isinstance(budget, dict) else None}


def _write(path: Path, data: dict) -> None:
    write_private(path, lambda tmp: tmp.write_text(json.dumps(data), encoding="utf-8"))


def class_join_code(class_name: str, root: Path | None = None) -> str:
    """The class's join code, made (and saved) on first use."""
    path = _path(class_name, root)
    with _lock:
        data = _read(path)
        if not data:
            data = {"code": new_join_code(), "budget": None}
            _write(path, data)
        return data["code"]


def rotate_join_code(class_name: str, root: Path | None = None) -> str:
    """A new code for the class; the old one stops working at the next job, and the budget of
    guesses starts full again."""
    path = _path(class_name, root)
    with _lock:
        old = _read(path).get("code")
        code = new_join_code()
        while code == old:
            code = new_join_code()
        _write(path, {"code": code, "budget": None})
    return code


def load_attempt_budget(class_name: str, code: str, root: Path | None = None) -> dict | None:
    """The budget saved for `code` (AttemptLimiter.state()), or None: a fresh one."""
    with _lock:
        data = _read(_path(class_name, root))
    return data.get("budget") if data.get("code") == code else None


def save_attempt_budget(class_name: str, code: str, state: dict, root: Path | None = None) -> bool:
    """Save the budget left for `code`. Not when the code was rotated meanwhile (the new code's
    fresh budget stands); False then."""
    path = _path(class_name, root)
    with _lock:
        if _read(path).get("code") != code:
            return False
        _write(path, {"code": code, "budget": state})
    return True


class AttemptBudgetWriter:
    """Saves a job's budget on its own thread: the requester's socket loop hands each new state
    over (offer) and never waits on the disk. close() saves the last state and waits (bounded)."""

    def __init__(self, class_name: str, code: str, root: Path | None = None):
        self.class_name, self.code, self.root = class_name, code, root
        self._latest: dict | None = None
        self._closed = False
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="attempt-budget", daemon=True)
        self._thread.start()

    def offer(self, state: dict) -> None:
        with self._guard:
            self._latest = state
        self._wake.set()

    def close(self, final_state: dict | None = None, timeout: float = 5.0) -> None:
        with self._guard:
            if final_state is not None:
                self._latest = final_state
            self._closed = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._guard:
                state, self._latest, closed = self._latest, None, self._closed
            if state is not None:
                try:
                    save_attempt_budget(self.class_name, self.code, state, self.root)
                except OSError as exc:  # a full disk must not end the job; the next save tries again
                    log.warning("cannot save the join-code attempt budget: %s", exc)
            if closed:
                return
