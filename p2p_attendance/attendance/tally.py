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

import numpy as np

from p2p_attendance.attendance.clustering import cluster_unknown_faces
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
    unknown_threshold: float = 0.55,
    min_unknown_frames: int = 3,
    cluster_unknowns: bool = True,
    verified: frozenset[tuple[str, int]] | set | None = None,
) -> tuple[list[StudentAttendance], list[UnknownPerson], list[float], list[bool]]:
    """Returns (students, unknown people, window start times, window observed flags).
    verified: the (student id, window) pairs that may count; None: every sighting counts."""
    window_s = window_s or choose_window_s(duration_s)
    starts = window_starts(duration_s, window_s)
    observed = [False] * len(starts)
    seen = {s.id: [False] * len(starts) for s in students}
    frames_seen = {s.id: 0 for s in students}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    best: dict[str, float] = {}
    unknown_times: list[float] = []
    unknown_encodings: list[tuple[float, ...]] = []

    for frame in sorted(frames, key=lambda f: f.index):
        window = window_index(frame.time_s, window_s, len(starts))
        if frame.faces:
            observed[window] = True
        counted: set[str] = set()
        for i, face in enumerate(frame.faces):
            sid = face.student_id
            if sid is None:
                if i < len(frame.encodings):
                    unknown_times.append(frame.time_s)
                    unknown_encodings.append(frame.encodings[i])
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
    if unknown_encodings and cluster_unknowns:  # live tables skip this: it is the costly part
        labels = cluster_unknown_faces(np.asarray(unknown_encodings, np.float32), unknown_threshold)
        clusters: dict[int, list[float]] = {}
        for label, time_s in zip(labels, unknown_times):
            clusters.setdefault(int(label), []).append(time_s)
        # A face seen in only a frame or two is more likely a detector error than a person.
        kept = sorted((times for times in clusters.values() if len(times) >= min_unknown_frames), key=min)
        for number, times in enumerate(kept, start=1):
            windows = [False] * len(starts)
            for t in times:
                windows[min(len(starts) - 1, int(t // window_s))] = True
            unknowns.append(UnknownPerson(f"Unknown {number}", len(times), min(times), max(times), windows))
    return results, unknowns, starts, observed
