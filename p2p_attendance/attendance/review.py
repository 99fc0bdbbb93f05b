"""The teacher's review: manual status overrides applied to a report (pure; marks them manual)."""
from __future__ import annotations

import copy

from p2p_attendance.attendance.model import ABSENT, PRESENT, AttendanceReport


def apply_overrides(report: AttendanceReport, overrides: dict[str, str]) -> AttendanceReport:
    """A copy of report where overrides {student_id: "present"|"absent"} replace the rule's status.

    An override equal to the rule's own verdict is still marked manual: the teacher looked and
    decided, and every export says so.
    """
    bad = {sid: status for sid, status in overrides.items() if status not in (PRESENT, ABSENT)}
    if bad:
        raise ValueError(f"override status must be present or absent: {bad}")
    result = copy.deepcopy(report)
    for student in result.students:
        if student.id in overrides:
            student.status = overrides[student.id]
            student.manual = True
    return result
