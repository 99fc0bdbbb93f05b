"""Turn an AttendanceReport into files (JSON, CSV, XLSX) and into the CLI's plain-text table.

Everything here is pure: no Qt, no sockets. Every file is written atomically (a temp file in the
target's directory, then os.replace), so a crash or a full disk never leaves half a workbook where
the teacher expects the last good one, and with mode 0600: a report names students.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2p_attendance.attendance.clustering import MAX_LOOKS_LIKE
from p2p_attendance.attendance.model import (
    PRESENT,
    AttendanceReport,
    IntegrityInfo,
    JobInfo,
    PeerWork,
    Quarantined,
    StudentAttendance,
    UnknownPerson,
    looks_like_text,
)
from p2p_attendance.attendance.tally import margin
from p2p_attendance.fileio import write_private
from p2p_attendance.peertext import displayable

REPORT_FORMAT = "p2p-attendance-report"
REPORT_FORMAT_VERSION = 1

CSV_COLUMNS = [
    "student_id",
    "name",
    "status",
    "presence_pct",
    "first_seen",
    "last_seen",
    "first_seen_s",
    "last_seen_s",
    "frames_seen",
    "manual",
    # Appended (older scripts read the columns above by position): rows from many lectures can be
    # filed in one table; "partial" is "yes" when the job was stopped before the end of the video.
    "class",
    "date",
    "partial",
]

SUMMARY_HEADER = [
    "Student ID",
    "Student",
    "Status",
    "Presence",
    "First seen",
    "Last seen",
    "Frames",
    "Manual override",
    "Note",  # what needs a look (attendance/tally.py: margin): a close call, an unsure group that may be them
    "Class",
    "Date",
    "Partial",
]
MANUAL_MARK = "manual"
SHEET_NAMES = ["Summary", "Counts", "Timeline", "Job"]

# One font for every styled cell: a cell font without a name makes some readers pick their own.
FONT_NAME = "Calibri"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DURATION_FORMAT = "[h]:mm:ss"  # [h]: hours past 24 do not wrap; also how openpyxl/pandas recognise a duration
# Timeline cells hold 1 (seen) or 0 (not seen) and show a tick or a dot: the value survives printing
# in black and white, conversion to CSV/PDF, and pandas; the colour is only a help for the eye.
TIMELINE_FORMAT = '"✓";"✓";"·"'

# Fills (ARGB) used in the workbook; tests read them back.
GREEN = "FFC6EFCE"
RED = "FFFFC7CE"
GREY = "FFD9D9D9"
TIMELINE_SEEN = "FF63BE7B"


# --------------------------------------------------------------------------- small helpers


def format_time(seconds: float | None) -> str:
    """m:ss below an hour, h:mm:ss from an hour on; "" for None."""
    if seconds is None:
        return ""
    total = max(0, int(round(seconds)))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _round_time(seconds: float | None) -> float | None:
    if seconds is None:
        return None
    seconds = float(seconds)
    if not math.isfinite(seconds):
        return None
    return round(seconds, 1)


def _finite_or_none(value: float | None, digits: int) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _started(report: AttendanceReport) -> dt.datetime | None:
    """When the job started, as the local wall-clock time it was recorded in (None if unknown)."""
    try:
        return dt.datetime.fromisoformat(report.job.started_at)
    except (TypeError, ValueError):
        return None


def _report_date(report: AttendanceReport) -> dt.date | None:
    started = _started(report)
    return started.date() if started else None


def _partial_text(report: AttendanceReport) -> str:
    job = report.job
    return (f"PARTIAL REPORT: stopped after {job.frames_processed} of {job.frames_total} frames; "
            "a student seen only in the part not looked at shows as absent.")


def _title_lines(report: AttendanceReport) -> list[str]:
    """What the report is about, for the top of each sheet and of each printed page."""
    job = report.job
    started = _started(report)
    parts = [f"Date: {started:%Y-%m-%d %H:%M}" if started else "Date: unknown"]
    if job.video:
        length = f" ({format_time(job.duration_s)})" if job.duration_s else ""
        parts.append(f"Video: {os.path.basename(job.video) or job.video}{length}")
    lines = [f"Attendance: {job.class_name or 'class not named'}", " · ".join(parts)]
    if job.partial:
        lines.append(_partial_text(report))
    return lines


def _rule_text(report: AttendanceReport) -> str:
    return (
        f"present = seen in at least {report.presence_threshold * 100:g}% of the "
        f"{report.window_s:g}-second windows in which the camera saw anyone"
    )


def _atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Atomically, and readable by the user alone: reports name students (fileio.write_private)."""
    return write_private(path, write)


# --------------------------------------------------------------------------- dict / JSON


def report_to_dict(report: AttendanceReport) -> dict[str, Any]:
    """A JSON-ready dict. Times rounded to 0.1 s, presence to 3 decimals, non-finite -> null."""
    job = report.job
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_FORMAT_VERSION,
        # Derived from the job's frame counts (not read back): true when the job was stopped early.
        "partial": job.partial,
        "students": [
            {
                "id": s.id,
                "name": s.name,
                "status": s.status,
                "presence": round(float(s.presence), 3),
                "first_seen_s": _round_time(s.first_seen_s),
                "last_seen_s": _round_time(s.last_seen_s),
                "frames_seen": int(s.frames_seen),
                "manual": bool(s.manual),
                "windows_seen": [bool(w) for w in s.windows_seen],
                "best_distance": _finite_or_none(s.best_distance, 4),
            }
            for s in report.students
        ],
        "unknown_faces": [
            {
                "label": u.label,
                "frames_seen": int(u.frames_seen),
                "first_seen_s": _round_time(u.first_seen_s),
                "last_seen_s": _round_time(u.last_seen_s),
                "windows_seen": [bool(w) for w in u.windows_seen],
                "looks_like": [str(name) for name in u.looks_like],  # an unsure group's students; [] for a stranger
                "looks_like_ids": [str(sid) for sid in u.looks_like_ids],
            }
            for u in report.unknown_faces
        ],
        "window_s": float(report.window_s),
        "window_starts_s": [_round_time(t) for t in report.window_starts_s],
        "windows_observed": [bool(w) for w in report.windows_observed],
        "presence_threshold": float(report.presence_threshold),
        "job": {
            "video": job.video,
            "class_name": job.class_name,
            "frames_total": int(job.frames_total),
            "frames_processed": int(job.frames_processed),
            "frames_from_checkpoint": int(job.frames_from_checkpoint),
            "sample_fps": float(job.sample_fps),
            "elapsed_s": _round_time(job.elapsed_s),
            "duration_s": _round_time(job.duration_s),
            "tolerance": float(job.tolerance),
            "started_at": job.started_at,
            "warnings": list(job.warnings),
            "peers": [{"name": p.name, "frames": int(p.frames)} for p in job.peers],
            "integrity": _integrity_to_dict(job.integrity),
        },
    }


def _integrity_to_dict(info: IntegrityInfo) -> dict[str, Any]:
    return {
        "sightings_verified": int(info.sightings_verified),
        "lies_caught": int(info.lies_caught),
        "batches_checked": int(info.batches_checked),
        "quarantined": [{"name": q.name, "why": q.why} for q in info.quarantined],
        "verification_cpu_s": float(info.verification_cpu_s),
        "volunteer_cpu_s": float(info.volunteer_cpu_s),
        "verified": bool(info.verified),
    }


def _integrity_from_dict(d: dict[str, Any]) -> IntegrityInfo:
    return IntegrityInfo(
        sightings_verified=int(d.get("sightings_verified", 0)),
        lies_caught=int(d.get("lies_caught", 0)),
        batches_checked=int(d.get("batches_checked", 0)),
        quarantined=[Quarantined(str(q.get("name", "")), str(q.get("why", ""))) for q in d.get("quarantined", [])],
        verification_cpu_s=float(d.get("verification_cpu_s", 0.0)),
        volunteer_cpu_s=float(d.get("volunteer_cpu_s", 0.0)),
        verified=bool(d.get("verified", True)),
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _looks_like_names(value: Any) -> list[str]:
    """An unsure group's "looks like" names as a report file holds them: none in reports made before
    unsure groups; from a damaged or edited file, only non-empty text, printable, at most as many
    names as a group is ever said to look like."""
    if not isinstance(value, list):
        return []
    names = [displayable(name, 200).strip() for name in value if isinstance(name, str)]
    return [name for name in names if name][:MAX_LOOKS_LIKE]


def _looks_like_ids(value: Any, student_ids: set[str]) -> list[str]:
    """An unsure group's student ids as a report file holds them: none before they were written;
    only ids of the report's own students (they flag an absent student for a look)."""
    if not isinstance(value, list):
        return []
    return [sid for sid in value if isinstance(sid, str) and sid in student_ids][:MAX_LOOKS_LIKE]


def report_from_dict(d: dict[str, Any]) -> AttendanceReport:
    """Inverse of report_to_dict. Optional keys may be missing (older or hand-made files)."""
    students = [
        StudentAttendance(
            id=str(s["id"]),
            name=str(s.get("name", s["id"])),
            status=str(s.get("status", "absent")),
            presence=float(s.get("presence", 0.0)),
            first_seen_s=_opt_float(s.get("first_seen_s")),
            last_seen_s=_opt_float(s.get("last_seen_s")),
            frames_seen=int(s.get("frames_seen", 0)),
            windows_seen=[bool(w) for w in s.get("windows_seen", [])],
            manual=bool(s.get("manual", False)),
            best_distance=_opt_float(s.get("best_distance")),
        )
        for s in d.get("students", [])
    ]
    unknown = [
        UnknownPerson(
            label=str(u.get("label", f"Unknown {i + 1}")),
            frames_seen=int(u.get("frames_seen", 0)),
            first_seen_s=float(u.get("first_seen_s") or 0.0),
            last_seen_s=float(u.get("last_seen_s") or 0.0),
            windows_seen=[bool(w) for w in u.get("windows_seen", [])],
            # absent in reports before unsure groups: every group then was counted as unknown
            looks_like=_looks_like_names(u.get("looks_like")),
            looks_like_ids=_looks_like_ids(u.get("looks_like_ids"), {s.id for s in students}),
        )
        for i, u in enumerate(d.get("unknown_faces", []))
    ]
    j = d.get("job") or {}
    job = JobInfo(
        video=str(j.get("video", "")),
        class_name=str(j.get("class_name", "")),
        frames_total=int(j.get("frames_total", 0)),
        frames_processed=int(j.get("frames_processed", 0)),
        sample_fps=float(j.get("sample_fps", 0.0)),
        elapsed_s=float(j.get("elapsed_s") or 0.0),
        duration_s=float(j.get("duration_s") or 0.0),
        tolerance=float(j.get("tolerance", 0.0)),
        started_at=str(j.get("started_at", "")),
        peers=[PeerWork(name=str(p.get("name", "")), frames=int(p.get("frames", 0)))
               for p in j.get("peers", [])],
        frames_from_checkpoint=int(j.get("frames_from_checkpoint", 0)),
        warnings=[str(w) for w in j.get("warnings", [])],
        integrity=_integrity_from_dict(j.get("integrity") or {}),
    )
    starts = [float(t) for t in d.get("window_starts_s", [])]
    observed = d.get("windows_observed")
    return AttendanceReport(
        students=students,
        unknown_faces=unknown,
        window_s=float(d.get("window_s", 0.0)),
        window_starts_s=starts,
        windows_observed=[bool(w) for w in observed] if observed is not None else [True] * len(starts),
        presence_threshold=float(d.get("presence_threshold", 0.0)),
        job=job,
    )


def write_json(report: AttendanceReport, path: str | os.PathLike[str]) -> Path:
    """Write the report as JSON (atomic, private); returns the path."""
    text = json.dumps(report_to_dict(report), ensure_ascii=False, indent=2, allow_nan=False) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8", errors="replace")  # a lone surrogate: "?" (_encodable)

    return _atomic_write(path, write)


def read_json(path: str | os.PathLike[str]) -> AttendanceReport:
    """Reopen a report saved by write_json."""
    return report_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- CSV


def _csv_rows(report: AttendanceReport) -> list[list[Any]]:
    rows: list[list[Any]] = []
    day = _report_date(report)
    class_and_date = [report.job.class_name, day.isoformat() if day else "", "yes" if report.job.partial else "no"]
    for s in report.students:
        first, last = _round_time(s.first_seen_s), _round_time(s.last_seen_s)
        rows.append([
            s.id,
            s.name,
            s.status,
            round(float(s.presence) * 100, 1),
            format_time(first),
            format_time(last),
            "" if first is None else first,
            "" if last is None else last,
            int(s.frames_seen),
            "yes" if s.manual else "no",
            *class_and_date,
        ])
    return rows


def write_csv(report: AttendanceReport, path: str | os.PathLike[str]) -> Path:
    """One row per student; UTF-8 with BOM so Excel shows accented names correctly."""
    rows = _csv_rows(report)

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8-sig", errors="replace", newline="") as f:  # as write_json
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            w.writerows(rows)

    return _atomic_write(path, write)


# --------------------------------------------------------------------------- XLSX


def _set(ws, row: int, col: int, value: Any):
    """Write a cell; text is always text (a name like "=1+1" must not become a formula)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", _encodable(value))
    cell = ws.cell(row=row, column=col, value=value)
    if isinstance(value, str) and cell.data_type == "f":
        cell.data_type = "s"
    return cell


def _autosize(ws, min_width: float = 6, max_width: float = 60, from_row: int = 1) -> None:
    """Fit each column to its widest value from `from_row` on (title rows above may spill over)."""
    from openpyxl.utils import get_column_letter

    widths: dict[int, int] = {}
    for row in ws.iter_rows(min_row=from_row):
        for cell in row:
            if cell.value is None:
                continue
            widths[cell.column] = max(widths.get(cell.column, 0), _text_width(_shown(cell)))
    for col, width in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = max(min_width, min(max_width, width + 2))


def _shown(cell) -> str:
    """Roughly the text a spreadsheet shows for a cell (for column widths)."""
    value = cell.value
    if isinstance(value, (int, float)) and cell.number_format.endswith("%"):
        return f"{value:.0%}"
    if isinstance(value, dt.timedelta):
        return "0:00:00"
    if isinstance(value, dt.datetime):
        return "2000-01-01 00:00:00"
    if isinstance(value, dt.date):
        return "2000-01-01"
    return str(value)


def _font(bold: bool = False, **kw):
    from openpyxl.styles import Font

    return Font(name=FONT_NAME, bold=bold, **kw)


def _seconds_cell(ws, row: int, col: int, seconds: float | None):
    """A real duration cell (whole seconds, as the app shows them), or an empty cell for None."""
    if seconds is None or not math.isfinite(float(seconds)):
        return ws.cell(row=row, column=col)
    cell = ws.cell(row=row, column=col, value=dt.timedelta(seconds=max(0, round(float(seconds)))))
    cell.number_format = DURATION_FORMAT
    return cell


def _header_row(ws, row: int, titles: list[str]) -> None:
    from openpyxl.styles import Alignment, Border, Side

    line = Side(style="thin", color="FF808080")
    for col, title in enumerate(titles, start=1):
        cell = _set(ws, row, col, title)
        cell.font = _font(bold=True)
        cell.border = Border(bottom=line)
        cell.alignment = Alignment(vertical="bottom", wrap_text=False)


def _title_rows(ws, report: AttendanceReport) -> int:
    """Class, date and video at the top of a sheet (and the partial warning); returns the next free row."""
    lines = _title_lines(report)
    for row, text in enumerate(lines, start=1):
        cell = _set(ws, row, 1, text)
        if row == 1:
            cell.font = _font(bold=True, size=14)
        elif text.startswith("PARTIAL"):
            cell.font = _font(bold=True, color="FFC00000")
        else:
            cell.font = _font()
    return len(lines) + 2  # a blank row before the table


def _encodable(text: str) -> str:
    """`text` with each lone surrogate as "?": a name saved before names were checked at entry
    (roster.store.check_name) may hold one, and UTF-8 (JSON, CSV, the XML inside a workbook)
    cannot carry it. The report is written all the same."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _header_text(text: str) -> str:
    return _encodable(text).replace("&", "&&")  # "&" starts a code in Excel's page header


def _print_setup(ws, report: AttendanceReport, repeat_rows: str | None = None, repeat_cols: str | None = None) -> None:
    """Landscape, as wide as one page, the table's header repeated on every page, and class, date
    and video in the page header (Summary has no title rows: it is a plain table for other tools)."""
    ws.page_setup.orientation = ws.ORIENTATION_LANDSCAPE
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as it takes
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_margins.left = ws.page_margins.right = 0.5
    if repeat_rows:
        ws.print_title_rows = repeat_rows
    if repeat_cols:
        ws.print_title_cols = repeat_cols
    lines = _title_lines(report)
    ws.oddHeader.left.text = _header_text(lines[0])
    ws.oddHeader.right.text = _header_text(lines[1])
    if report.job.partial:
        ws.oddHeader.center.text = "PARTIAL REPORT"
        ws.oddHeader.center.color = "C00000"
    ws.oddFooter.left.text = "&A"  # the sheet's name
    ws.oddFooter.right.text = "Page &P of &N"


def _summary_sheet(ws, report: AttendanceReport) -> None:
    """One row per student under a single header row in A1: pd.read_excel(sheet_name="Summary")
    reads it as it is. Class, date and partial are columns, so many lectures can be stacked."""
    from openpyxl.styles import Alignment, PatternFill

    green = PatternFill(fill_type="solid", start_color=GREEN, end_color=GREEN)
    red = PatternFill(fill_type="solid", start_color=RED, end_color=RED)
    day = _report_date(report)
    partial = "yes" if report.job.partial else "no"

    _header_row(ws, 1, SUMMARY_HEADER)
    ws.freeze_panes = "A2"
    row = 1
    for s in report.students:
        row += 1
        present = s.status == PRESENT
        _set(ws, row, 1, s.id)
        _set(ws, row, 2, s.name)
        status = _set(ws, row, 3, "Present" if present else "Absent")
        status.fill = green if present else red
        presence = _set(ws, row, 4, round(float(s.presence), 3))
        presence.number_format = "0%"
        _seconds_cell(ws, row, 5, s.first_seen_s)
        _seconds_cell(ws, row, 6, s.last_seen_s)
        _set(ws, row, 7, int(s.frames_seen))
        if s.manual:
            _set(ws, row, 8, MANUAL_MARK).font = _font(italic=True)
        note = margin(s, report.presence_threshold, unknown_faces=report.unknown_faces).text()
        if note:
            _set(ws, row, 9, note)
        _set(ws, row, 10, report.job.class_name)
        if day is not None:
            ws.cell(row=row, column=11, value=day).number_format = DATE_FORMAT
        _set(ws, row, 12, partial).alignment = Alignment(horizontal="center")

    _autosize(ws)
    if report.students:
        ws.auto_filter.ref = f"A1:{ws.cell(row=row, column=len(SUMMARY_HEADER)).coordinate}"
    if report.job.partial:
        ws.sheet_properties.tabColor = "C00000"
    _print_setup(ws, report, repeat_rows="1:1")
    ws.print_options.gridLines = True


def _counts_sheet(ws, report: AttendanceReport) -> None:
    """How many were present, absent, set by hand; and the faces that matched nobody."""
    from openpyxl.styles import Alignment

    row = _title_rows(ws, report)
    n_present = sum(1 for s in report.students if s.status == PRESENT)
    counts = [
        ("Present", n_present),
        ("Absent", len(report.students) - n_present),
        ("Students in the class", len(report.students)),
        ("Status set by hand", sum(1 for s in report.students if s.manual)),
        ("Unknown faces", sum(not u.unsure for u in report.unknown_faces)),
        ("Unsure faces (look like students)", sum(u.unsure for u in report.unknown_faces)),
    ]
    header_row = row
    _header_row(ws, row, ["Count", "Number"])
    for label, number in counts:
        row += 1
        _set(ws, row, 1, label)
        _set(ws, row, 2, int(number))

    row += 2
    unknown_heading = row
    row += 1
    _header_row(ws, row, ["Label", "Frames", "First seen", "Last seen", "Looks like"])
    if not report.unknown_faces:
        row += 1
        _set(ws, row, 1, "none")
    for u in report.unknown_faces:
        row += 1
        _set(ws, row, 1, u.label)
        _set(ws, row, 2, int(u.frames_seen))
        _seconds_cell(ws, row, 3, u.first_seen_s)
        _seconds_cell(ws, row, 4, u.last_seen_s)
        # empty for a stranger; indented: the right-aligned times before it would run into the names
        _set(ws, row, 5, ", ".join(u.looks_like)).alignment = Alignment(indent=1)

    _autosize(ws, from_row=header_row)
    # After the widths: a heading may spill over the cells to its right.
    _set(ws, unknown_heading, 1, "Unknown faces (seen, matched to nobody in the class; unsure: look like students)").font = _font(bold=True)
    _print_setup(ws, report)


def _timeline_sheet(ws, report: AttendanceReport) -> None:
    from openpyxl.styles import Alignment, Border, PatternFill, Side
    from openpyxl.utils import get_column_letter

    seen_fill = PatternFill(fill_type="solid", start_color=TIMELINE_SEEN, end_color=TIMELINE_SEEN)
    grey_fill = PatternFill(fill_type="solid", start_color=GREY, end_color=GREY)
    line = Side(style="thin", color="FFBFBFBF")
    grid = Border(left=line, right=line, top=line, bottom=line)
    centre = Alignment(horizontal="center", vertical="center")
    n = len(report.window_starts_s)
    observed = list(report.windows_observed) + [True] * (n - len(report.windows_observed))

    header = _title_rows(ws, report)
    _set(ws, header, 1, "Student").font = _font(bold=True)
    for i, start in enumerate(report.window_starts_s):
        cell = _seconds_cell(ws, header, i + 2, start)
        cell.font = _font(bold=True)
        cell.alignment = Alignment(horizontal="center", text_rotation=90)
    ws.freeze_panes = ws.cell(row=header + 1, column=2).coordinate

    rows: list[tuple[str, list[bool], bool]] = [(s.name, s.windows_seen, False) for s in report.students]
    rows += [(u.label, u.windows_seen, True) for u in report.unknown_faces]
    for r, (label, seen, is_unknown) in enumerate(rows, start=header + 1):
        name_cell = _set(ws, r, 1, label)
        name_cell.border = grid
        if is_unknown:
            name_cell.font = _font(italic=True, color="FF808080")
        for i in range(n):
            if not observed[i]:  # no value: nobody could be seen, the window does not count
                cell = ws.cell(row=r, column=i + 2)
                cell.fill = grey_fill
            else:
                was_seen = i < len(seen) and bool(seen[i])
                cell = ws.cell(row=r, column=i + 2, value=1 if was_seen else 0)
                cell.number_format = TIMELINE_FORMAT
                if was_seen:
                    cell.fill = seen_fill
            cell.alignment = centre
            cell.border = grid

    legend_row = header + len(rows) + 2
    _set(ws, legend_row, 1, f"✓ (green): seen in that window. · : not seen. Grey, empty: the camera saw no "
                             f"face at all (not counted). Each column is a {report.window_s:g}-second window, "
                             "headed by its start in the video.").font = _font(italic=True)

    name_width = max([_text_width("Student")] + [_text_width(label) for label, _, _ in rows])
    ws.column_dimensions["A"].width = min(60, max(12, name_width + 2))
    for i in range(n):
        ws.column_dimensions[get_column_letter(i + 2)].width = 3.5
    ws.row_dimensions[header].height = 48
    _print_setup(ws, report, repeat_rows=f"{header}:{header}", repeat_cols="A:A")


def _job_sheet(ws, report: AttendanceReport) -> None:
    from openpyxl.styles import Alignment

    bold = _font(bold=True)
    job = report.job
    n_present = sum(1 for s in report.students if s.status == PRESENT)
    n_manual = sum(1 for s in report.students if s.manual)
    started = _started(report)
    items: list[tuple[str, Any, str | None]] = [
        ("Video", job.video, None),
        ("Class", job.class_name, None),
        # Local wall-clock time (spreadsheets have no time zones); the offset is beside it.
        ("Started", started.replace(tzinfo=None) if started else job.started_at, DATETIME_FORMAT if started else None),
        ("Time zone", _utc_offset(started), None),
        ("Video length", _duration(job.duration_s), DURATION_FORMAT),
        ("Frames total", int(job.frames_total), None),
        ("Frames processed", int(job.frames_processed), None),
        ("Frames from checkpoint", int(job.frames_from_checkpoint), None),
        ("Sample fps", float(job.sample_fps), None),
        ("Tolerance", float(job.tolerance), None),
        ("Presence threshold", float(report.presence_threshold), "0%"),
        ("Window length (s)", float(report.window_s), None),
        ("Rule", _rule_text(report), None),
        ("Elapsed", _duration(job.elapsed_s), DURATION_FORMAT),
        ("Present", f"{n_present} of {len(report.students)}", None),
        ("Manual overrides", n_manual, None),
        ("Sightings verified", int(job.integrity.sightings_verified) if job.integrity.verified else "not verified", None),
        ("Lies caught", int(job.integrity.lies_caught), None),
        ("Batches checked twice", int(job.integrity.batches_checked), None),
        ("Helpers quarantined", "; ".join(f"{q.name}: {q.why}" for q in job.integrity.quarantined) or "none", None),
    ]
    top = row = _title_rows(ws, report) - 1
    for key, value, fmt in items:
        row += 1
        _set(ws, row, 1, key).font = bold
        cell = _set(ws, row, 2, value)
        cell.alignment = Alignment(horizontal="left")
        if fmt:
            cell.number_format = fmt

    row += 2
    _set(ws, row, 1, "Peers").font = bold
    row += 1
    _set(ws, row, 1, "Name").font = bold
    _set(ws, row, 2, "Frames").font = bold
    if not job.peers:
        row += 1
        _set(ws, row, 1, "(none)")
    for p in job.peers:
        row += 1
        _set(ws, row, 1, p.name)
        _set(ws, row, 2, int(p.frames)).alignment = Alignment(horizontal="left")

    row += 2
    _set(ws, row, 1, "Warnings").font = bold
    if not job.warnings:
        _set(ws, row, 2, "none")
    for w in job.warnings:
        _set(ws, row, 2, w)
        row += 1

    _autosize(ws, max_width=100, from_row=top + 1)
    _print_setup(ws, report)


def _utc_offset(moment: dt.datetime | None) -> str:
    if moment is None or moment.utcoffset() is None:
        return "unknown"
    return "UTC" + moment.isoformat(timespec="seconds")[19:]  # e.g. UTC+02:00


def _duration(seconds: float | None) -> dt.timedelta | None:
    if seconds is None or not math.isfinite(float(seconds)):
        return None
    return dt.timedelta(seconds=max(0, round(float(seconds))))


def build_workbook(report: AttendanceReport):
    """The openpyxl Workbook with sheets Summary, Counts, Timeline, Job (not saved)."""
    from openpyxl import Workbook

    wb = Workbook()
    summary = wb.active
    summary.title = SHEET_NAMES[0]
    _summary_sheet(summary, report)
    _counts_sheet(wb.create_sheet(SHEET_NAMES[1]), report)
    _timeline_sheet(wb.create_sheet(SHEET_NAMES[2]), report)
    _job_sheet(wb.create_sheet(SHEET_NAMES[3]), report)
    return wb


def write_xlsx(report: AttendanceReport, path: str | os.PathLike[str]) -> Path:
    """Write the report as an Excel workbook (atomic, private); returns the path."""
    wb = build_workbook(report)
    return _atomic_write(path, lambda tmp: wb.save(tmp))


# --------------------------------------------------------------------------- all at once

# A report file's extension names its format; nothing else does (an Excel file named .csv helps nobody).
REPORT_EXTENSIONS = {".xlsx": "xlsx", ".csv": "csv", ".json": "json"}


def format_for_path(path: str | os.PathLike[str]) -> str:
    """"xlsx", "csv" or "json" from the file name's extension; ValueError for any other name."""
    kind = REPORT_EXTENSIONS.get(Path(path).suffix.lower())
    if kind is None:
        raise ValueError(f"{Path(path).name}: a report's name must end in .xlsx (Excel workbook), .csv or .json, "
                         "which picks what is written")
    return kind


def writer_for(kind: str) -> Callable[[AttendanceReport, str | os.PathLike[str]], Path]:
    """The writer of a report format: xlsx, csv or json."""
    return {"xlsx": write_xlsx, "csv": write_csv, "json": write_json}[kind]



def write_reports(
    report: AttendanceReport,
    xlsx: str | os.PathLike[str] | None = None,
    csv: str | os.PathLike[str] | None = None,  # noqa: A002 - the CLI's option name
    json_path: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write whichever of the three files were asked for; returns the paths written."""
    written: list[Path] = []
    if xlsx is not None:
        written.append(write_xlsx(report, xlsx))
    if csv is not None:
        written.append(write_csv(report, csv))
    if json_path is not None:
        written.append(write_json(report, json_path))
    return written


# --------------------------------------------------------------------------- text table


def _text_width(text: str) -> int:
    """Terminal columns: wide East Asian characters count 2, combining marks 0."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, right: bool = False) -> str:
    fill = " " * max(0, width - _text_width(text))
    return fill + text if right else text + fill


def integrity_text(info: IntegrityInfo) -> str:
    """One line for the teacher (CLI and GUI): what this computer checked, and whom it caught."""
    if not info.verified:
        text = "Sightings were not verified on this computer"
    else:
        text = f"{info.sightings_verified} sighting{'s' if info.sightings_verified != 1 else ''} verified on this computer"
    text += f", {info.batches_checked} batch{'es' if info.batches_checked != 1 else ''} checked twice"
    text += f", {info.lies_caught} lie{'s' if info.lies_caught != 1 else ''} caught"
    if info.quarantined:
        text += "; quarantined: " + "; ".join(f"{q.name} ({q.why})" for q in info.quarantined)
    return text + "."


def format_table(report: AttendanceReport) -> str:
    """The plain-text attendance table printed at the end of a CLI run (no colour codes)."""
    header = ["Student", "Status", "Presence", "First", "Last", "Frames"]
    right = [False, False, True, True, True, True]
    rows = []
    for s in report.students:
        rows.append([
            s.name if s.name == s.id else f"{s.name} ({s.id})",
            s.status + ("*" if s.manual else ""),
            f"{float(s.presence) * 100:.0f}%",
            format_time(s.first_seen_s) or "-",
            format_time(s.last_seen_s) or "-",
            str(int(s.frames_seen)),
        ])
    widths = [max(_text_width(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(_pad(c, widths[i], right[i]) for i, c in enumerate(cells)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    out.append("")
    n_present = sum(1 for s in report.students if s.status == PRESENT)
    out.append(f"{n_present} of {len(report.students)} present. {_rule_text(report)}.")
    if any(s.manual for s in report.students):
        out.append("* status set by hand")
    if report.unknown_faces:
        parts = [
            f"{u.label} ({u.frames_seen} frames, {format_time(u.first_seen_s)}-{format_time(u.last_seen_s)}"
            + (f", {looks_like_text(u.looks_like)})" if u.unsure else ")")
            for u in report.unknown_faces
        ]
        out.append("Unknown faces: " + ", ".join(parts))
    else:
        out.append("Unknown faces: none")
    if report.job.partial:
        out.append(_partial_text(report))
    return "\n".join(out) + "\n"
