"""Grouping faces that matched nobody into unknown people (one stranger all lecture = 1 unknown).

`group_unknown_faces` is the one rule: the report's unknown people (attendance/tally.py), the Take
screen's strip and the review all show its groups, numbered the same way.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from p2p_attendance.attendance.model import FrameResult

UNKNOWN_THRESHOLD = 0.55  # mean distance below which two groups are one person
MIN_UNKNOWN_FRAMES = 3  # a face seen in only a frame or two is more likely a detector error than a person


@dataclass(frozen=True)
class UnknownGroup:
    """One unknown person: "Unknown N", numbered by first appearance."""

    label: str
    faces: tuple[tuple[int, int], ...]  # (frame index, face position) of each of its faces, in time order
    times: tuple[float, ...]  # the time of each face, same order


def group_unknown_faces(
    frames: Iterable[FrameResult], threshold: float = UNKNOWN_THRESHOLD, min_frames: int = MIN_UNKNOWN_FRAMES
) -> tuple[UnknownGroup, ...]:
    """The unknown faces of these frames grouped into people. Depends only on the set of frames
    (not on the order they arrived in), so every view of the same frames numbers them alike."""
    keys: list[tuple[int, int]] = []
    times: list[float] = []
    encodings = []
    for frame in sorted(frames, key=lambda f: f.index):
        for position, face in enumerate(frame.faces):
            if face.student_id is None and position < len(frame.encodings) and frame.encodings[position] is not None:
                keys.append((frame.index, position))
                times.append(frame.time_s)
                encodings.append(frame.encodings[position])
    if not keys:
        return ()
    labels = cluster_unknown_faces(np.asarray(encodings, np.float32), threshold)
    members: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        members.setdefault(int(label), []).append(row)  # rows are in (frame index, position) order
    kept = sorted((rows for rows in members.values() if len(rows) >= min_frames), key=lambda rows: (times[rows[0]], keys[rows[0]]))
    return tuple(
        UnknownGroup(f"Unknown {number}", tuple(keys[r] for r in rows), tuple(times[r] for r in rows))
        for number, rows in enumerate(kept, start=1)
    )


def cluster_unknown_faces(encodings: np.ndarray, threshold: float = UNKNOWN_THRESHOLD) -> np.ndarray:
    """Average-linkage agglomerative clustering; returns a cluster label per encoding.

    Two groups merge while the mean distance between their members is below threshold. This is
    stricter than single linkage, which chains different people together through one blurry
    face. The result does not depend on the order faces arrived in (peers finish out of order).
    Beyond a few hundred faces it clusters a regular sample and labels the rest by nearest sample.
    """
    encodings = np.asarray(encodings, np.float32).reshape(-1, 128)
    n = len(encodings)
    if n == 0:
        return np.zeros(0, np.int64)
    max_points = 400  # the merge loop is O(n^3)
    if n > max_points:
        # Cluster a regular sample, then give every face its nearest sample's label.
        sample = np.linspace(0, n - 1, max_points).astype(int)
        sample_labels = cluster_unknown_faces(encodings[sample], threshold)
        nearest = np.argmin(_pairwise(encodings, encodings[sample]), axis=1)
        return sample_labels[nearest]

    distances = _pairwise(encodings, encodings).astype(np.float64)
    sizes = np.ones(n)
    sums = distances.copy()  # sums[a, b] = total distance between members of groups a and b
    active = np.ones(n, bool)
    labels = np.arange(n)
    np.fill_diagonal(sums, np.inf)
    while True:
        mean = sums / np.outer(sizes, sizes)
        mean[~active, :] = np.inf
        mean[:, ~active] = np.inf
        a, b = np.unravel_index(np.argmin(mean), mean.shape)
        if not np.isfinite(mean[a, b]) or mean[a, b] >= threshold:
            break
        a, b = min(a, b), max(a, b)
        sums[a, :] += sums[b, :]
        sums[:, a] += sums[:, b]
        sums[a, a] = np.inf
        sizes[a] += sizes[b]
        active[b] = False
        labels[labels == b] = a
    _, dense = np.unique(labels, return_inverse=True)
    return dense


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0))
