"""Logging: stderr for the terminal, plus one log file per run in the user log dir for the
teacher's side (peer events and errors, linked from the GUI). Volunteers write no log file:
nothing of someone else's job lands on a student's disk."""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from p2p_attendance import paths
from p2p_attendance.fileio import private_file
from p2p_attendance.peertext import displayable

KEEP_RUN_LOGS = 20
MAX_MESSAGE_CHARS = 4000


class OneLineFormatter(logging.Formatter):
    """A record's message follows the rule for peer text: a control character, a newline or a bidi
    override in something a peer sent (a name, an error text) shows as '?' and cannot forge a
    line in the terminal or the run log ("Join code: ..."), nor rewrite the terminal. Tracebacks
    are ours and keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = displayable(record.message, MAX_MESSAGE_CHARS)
        return super().formatMessage(record)


def setup_logging(verbose: bool, run_log: str | None = None) -> Path | None:
    """Configure the root logger; with run_log (a short name), also a file for this run."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    if run_log is None:
        return None
    folder = paths.log_dir()
    old = sorted(folder.glob("*.log"))
    for stale in old[: max(0, len(old) - (KEEP_RUN_LOGS - 1))]:
        stale.unlink(missing_ok=True)
    path = folder / f"{dt.datetime.now():%Y%m%d-%H%M%S}-{run_log}.log"
    handler = logging.FileHandler(private_file(path), encoding="utf-8")  # names and addresses: 0600
    handler.setLevel(logging.INFO)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root.addHandler(handler)
    return path


def latest_log() -> Path | None:
    """The newest log file, or None when there is none."""
    logs = sorted(paths.log_dir().glob("*.log"))
    return logs[-1] if logs else None
