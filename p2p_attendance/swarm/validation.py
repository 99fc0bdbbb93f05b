"""Result validation: a share of batches is done again by a different peer and compared.

Threat model: a student with the join code runs a patched volunteer that reports a friend in
frames where the friend is not (or hides someone). Every peer runs the same deterministic code on
the same JPEG bytes, so honest results agree exactly (up to float noise between the onnxruntime
and numpy descriptors, ~1e-6). A disagreement goes to a third peer; the peer that the third
contradicts is quarantined and all of its batches are redone. With a share s of batches checked,
a peer that lies in k batches escapes with probability (1 - s)^k: lying in 20 batches at the
default 5 % is caught 64 % of the time, in 60 batches 95 %; and one catch voids all its work.
"""
from __future__ import annotations

import hashlib

from p2p_attendance.attendance.model import Face

DEFAULT_SHARE = 0.05
DISTANCE_TOLERANCE = 0.02


def should_check(secret: str, batch_id: int, share: float) -> bool:
    """Deterministic per job and batch, unpredictable to peers: secret never leaves the requester
    (the job id would not do: every peer is told it)."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{secret}/{batch_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def _frame_key(faces: list[Face]) -> list[tuple]:
    return sorted((f.box, f.student_id or "") for f in faces)


def results_agree(first: list[list[Face]], second: list[list[Face]], tolerance: float = DISTANCE_TOLERANCE) -> bool:
    """Same faces (boxes), same students, distances within tolerance, frame by frame."""
    if len(first) != len(second):
        return False
    for a, b in zip(first, second):
        if _frame_key(a) != _frame_key(b):
            return False
        for fa, fb in zip(sorted(a, key=lambda f: (f.box, f.student_id or "")), sorted(b, key=lambda f: (f.box, f.student_id or ""))):
            if abs(fa.distance - fb.distance) > tolerance:
                return False
    return True
