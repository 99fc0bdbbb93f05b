"""Every finished report, kept per class so that none is lost: the report as the rule made it and
the teacher's overrides, in the user's private data folder (files 0600 in 0700 folders: a report
names students and says who was absent)."""
from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from p2p_attendance import paths
from p2p_attendance.attendance.model import AttendanceReport
from p2p_attendance.fileio import write_private_bytes
from p2p_attendance.report.writers import report_from_dict, report_to_dict
from p2p_attendance.roster.store import slugify

FORMAT_VERSION = 1


@dataclass
class SavedReport:
    """A report kept in the class's history, with the teacher's overrides."""
    path: Path
    report: AttendanceReport  # the rule's verdicts, before the teacher's overrides
    overrides: dict[str, str]
    exported: bool  # saved to a file of the teacher's choice since it last changed


def class_history_dir(class_name: str) -> Path:
    """The class's history folder (private to the user)."""
    return paths.private_dir(paths.history_dir() / slugify(class_name))


def new_report_path(report: AttendanceReport) -> Path:
    """A fresh file name for a report: its start time, then a random tail (two jobs a second)."""
    started = (report.job.started_at or dt.datetime.now().isoformat())[:19].replace(":", "-").replace("T", "_")
    return class_history_dir(report.job.class_name) / f"{started}_{secrets.token_hex(3)}.json"


def save_report(path: Path, report: AttendanceReport, overrides: dict[str, str], exported: bool) -> Path:
    """Write the entry atomically, readable by this user only."""
    payload = {"format": FORMAT_VERSION, "report": report_to_dict(report), "overrides": dict(overrides), "exported": exported}
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    paths.private_dir(path.parent)
    write_private_bytes(path, text.encode("utf-8"))
    return path


def load_report(path: Path) -> SavedReport:
    """A saved report read back from its file; ValueError when the file is not one."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a saved report")
    overrides = {str(k): str(v) for k, v in (data.get("overrides") or {}).items()}
    return SavedReport(Path(path), report_from_dict(data["report"]), overrides, bool(data.get("exported")))


def list_reports(class_name: str) -> list[SavedReport]:
    """The class's saved reports, newest first; unreadable files are skipped."""
    folder = paths.history_dir() / slugify(class_name)
    found = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            found.append(load_report(path))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(found, key=lambda saved: (saved.report.job.started_at, saved.path.name), reverse=True)
