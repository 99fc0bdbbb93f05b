"""The attendance rule: a pure function from per-frame detections to per-student attendance.

Presence is measured over time windows, not frames (docs/attendance-rule.md says why): the
lecture is cut into windows of `window_s` seconds; a student "was there" in a window if the
engine matched them in at least one sampled frame of it. presence = windows seen / windows
observed, where a window is observed when the camera saw at least one face in it (a dark or
blocked camera does not count against anyone). status = present when presence >= threshold.
When the sightings came from volunteers, a window counts for a student only once one of their
sightings in it was verified on the teacher's computer (`verified`, swarm/checks.py).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from p2p_attendance.attendance.clustering import (
    MIN_UNKNOWN_FRAMES,
    UNKNOWN_THRESHOLD,
    UnknownGroup,
    group_unknown_faces,
)
from p2p_attendance.attendance.model import (
    ABSENT,
    PRESENT,
    FrameResult,
    Student,
    StudentAttendance,
    UnknownPerson,
)

DEFAULT_PRESENCE_THRESHOLD = 0.5
MIN_WINDOW_S = 5.0
MAX_WINDOW_S = 60.0
TARGET_WINDOWS = 12  # short videos still get enough windows to tell late arrivals apart


def choose_window_s(duration_s: float) -> float:
    """One minute for a lecture; shorter for short clips so there are about a dozen windows."""
    return float(min(MAX_WINDOW_S, max(MIN_WINDOW_S, duration_s / TARGET_WINDOWS)))


def window_starts(duration_s: float, window_s: float) -> list[float]:
    """Start times of the presence windows that cover the video (always at least one)."""
    count = max(1, math.ceil(duration_s / window_s - 1e-9))
    return [i * window_s for i in range(count)]


def window_index(time_s: float, window_s: float, windows: int) -> int:
    """The presence window a moment falls in (the last one takes the video's tail)."""
    return min(windows - 1, max(0, int(time_s // window_s)))


def tally(
    frames: Iterable[FrameResult],
    students: list[Student],
    duration_s: float,
    window_s: float | None = None,
    threshold: float = DEFAULT_PRESENCE_THRESHOLD,
    unknown_threshold: float = UNKNOWN_THRESHOLD,
    min_unknown_frames: int = MIN_UNKNOWN_FRAMES,
    cluster_unknowns: bool = True,
    verified: frozenset[tuple[str, int]] | set | None = None,
    unknown_groups: tuple[UnknownGroup, ...] | None = None,
) -> tuple[list[StudentAttendance], list[UnknownPerson], list[float], list[bool]]:
    """Returns (students, unknown people, window start times, window observed flags).
    verified: the (student id, window) pairs that may count; None: every sighting counts.
    unknown_groups: group_unknown_faces(frames) when the caller already has it (it is the costly part;
    the job's, with the roster, tells unsure groups from strangers)."""
    frames = list(frames)
    window_s = window_s or choose_window_s(duration_s)
    starts = window_starts(duration_s, window_s)
    observed = [False] * len(starts)
    seen = {s.id: [False] * len(starts) for s in students}
    frames_seen = {s.id: 0 for s in students}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    best: dict[str, float] = {}

    for frame in sorted(frames, key=lambda f: f.index):
        window = window_index(frame.time_s, window_s, len(starts))
        if frame.faces:
            observed[window] = True
        counted: set[str] = set()
        for face in frame.faces:
            sid = face.student_id
            if sid is None:
                continue
            if sid not in seen or sid in counted:
                continue  # not on this roster, or the same student twice in one frame
            counted.add(sid)
            if verified is None or (sid, window) in verified:
                seen[sid][window] = True
            frames_seen[sid] += 1
            first[sid] = min(first.get(sid, frame.time_s), frame.time_s)
            last[sid] = max(last.get(sid, frame.time_s), frame.time_s)
            best[sid] = min(best.get(sid, face.distance), face.distance)

    observed_count = sum(observed)
    results = []
    for student in students:
        windows = seen[student.id]
        hits = sum(w and o for w, o in zip(windows, observed))
        presence = hits / observed_count if observed_count else 0.0
        results.append(
            StudentAttendance(
                id=student.id,
                name=student.name,
                status=PRESENT if presence >= threshold and hits > 0 else ABSENT,
                presence=presence,
                first_seen_s=first.get(student.id),
                last_seen_s=last.get(student.id),
                frames_seen=frames_seen[student.id],
                windows_seen=windows,
                best_distance=best.get(student.id),
            )
        )

    unknowns = []
    if cluster_unknowns:  # live tables skip this: it is the costly part
        if unknown_groups is None:
            unknown_groups = group_unknown_faces(frames, unknown_threshold, min_unknown_frames)
        names = {s.id: s.name for s in students}
        for group in unknown_groups:
            windows = [False] * len(starts)
            for t in group.times:
                windows[window_index(t, window_s, len(starts))] = True
            unknowns.append(UnknownPerson(group.label, len(group.times), min(group.times), max(group.times), windows,
                                          group.looks_like_names(names), list(group.looks_like)))
    return results, unknowns, starts, observed


# A verdict this close to the threshold could flip with a window or two more or fewer (a window
# is 1/12 of a short clip, 1/90 of a lecture): the review shows such students first.
CLOSE_CALL_BAND = 0.10


@dataclass(frozen=True)
class Margin:
    """How far a student's presence is from the threshold, and on which side; and, for a student
    marked absent, the unsure groups that look like them (a look there may make them present)."""

    presence: float
    threshold: float
    close: bool  # within CLOSE_CALL_BAND of the threshold
    look_alikes: tuple[str, ...] = ()  # labels of unsure groups that look like this absent student

    @property
    def above(self) -> bool:
        return self.presence >= self.threshold

    def of_threshold(self) -> str:
        """'42 % of 50 %'."""
        return f"{round(self.presence * 100)} % of {round(self.threshold * 100)} %"

    def text(self) -> str:
        """'close: 42 % of 50 %' for a close call, 'Unsure 1 may be them' for an absent student an
        unsure group looks like, both joined by '; ', '' otherwise."""
        parts = [f"close: {self.of_threshold()}"] if self.close else []
        if self.look_alikes:
            parts.append(f"{' or '.join(self.look_alikes)} may be them")
        return "; ".join(parts)


def margin(student: StudentAttendance, threshold: float, band: float = CLOSE_CALL_BAND,
           unknown_faces: Iterable[UnknownPerson] = ()) -> Margin:
    """The rule's margin for this student: close when |presence - threshold| < band. A student
    never seen is no close call, whatever the threshold (nothing to look at). A student marked
    absent whom an unsure group looks like (unknown_faces: the report's) needs a look too: the
    per-track rule could not name that face (within its margin of a classmate's photo, or just
    beyond the tolerance: attendance/clustering.py), and the teacher's look can. A present student
    stays present whoever that face is, and a status the teacher set needs no more look."""
    presence = float(student.presence)
    close = student.frames_seen > 0 and abs(presence - threshold) < band
    needs_it = student.status == ABSENT and not student.manual  # the teacher's own verdict: they looked
    look_alikes = tuple(u.label for u in unknown_faces if u.unsure and student.id in u.looks_like_ids) if needs_it else ()
    return Margin(presence, threshold, close, look_alikes)
