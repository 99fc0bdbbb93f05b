"""Matching face encodings against a roster: pure numpy, no models."""
from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 0.6  # face_recognition's default: same person below 0.6 on its benchmark


def match_encodings(
    encodings: np.ndarray, roster_encodings: np.ndarray, roster_ids: list[str], tolerance: float
) -> list[tuple[str | None, float]]:
    """For each encoding, the closest roster entry's id (None beyond tolerance) and its distance.

    A student may have several roster rows (several enrollment photos); the closest one counts.
    """
    encodings = np.asarray(encodings, np.float32).reshape(-1, 128)
    if len(encodings) == 0:
        return []
    if len(roster_ids) == 0:
        return [(None, float("inf"))] * len(encodings)
    roster = np.asarray(roster_encodings, np.float32).reshape(-1, 128)
    distances = np.linalg.norm(encodings[:, None, :] - roster[None, :, :], axis=2)
    best = distances.argmin(axis=1)
    out = []
    for row, col in enumerate(best):
        distance = float(distances[row, col])
        out.append((roster_ids[col] if distance <= tolerance else None, distance))
    return out


def resolve_frame_conflicts(matches: list[tuple[str | None, float]]) -> list[tuple[str | None, float]]:
    """One student appears at most once per frame: when two faces match the same student, the
    closer keeps the match and the other becomes unknown (a look-alike, not a second copy)."""
    best_row: dict[str, int] = {}
    for row, (student, distance) in enumerate(matches):
        if student is not None and (student not in best_row or distance < matches[best_row[student]][1]):
            best_row[student] = row
    return [
        (student, distance) if student is None or best_row[student] == row else (None, distance)
        for row, (student, distance) in enumerate(matches)
    ]
