"""The teacher's review: manual status overrides applied to a report (pure; marks them manual)."""
from __future__ import annotations

import copy
from collections.abc import Iterable

from p2p_attendance.attendance.model import ABSENT, PRESENT, AttendanceReport


def apply_overrides(report: AttendanceReport, overrides: dict[str, str], named: Iterable[str] = ()) -> AttendanceReport:
    """A copy of report where overrides {student_id: "present"|"absent"} replace the rule's status.

    An override equal to the rule's own verdict is still marked manual: the teacher looked and
    decided, and every export says so. named: labels of unknown-face groups the teacher assigned to
    a student; such a group no longer "may be" anyone else (tally.margin flags nobody for it).
    """
    bad = {sid: status for sid, status in overrides.items() if status not in (PRESENT, ABSENT)}
    if bad:
        raise ValueError(f"override status must be present or absent: {bad}")
    result = copy.deepcopy(report)
    for student in result.students:
        if student.id in overrides:
            student.status = overrides[student.id]
            student.manual = True
    named = set(named)
    for group in result.unknown_faces:
        if group.label in named:
            group.looks_like_ids = []
    return result
