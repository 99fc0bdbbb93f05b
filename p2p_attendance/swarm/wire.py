"""Typed results and job parameters <-> message fields, in one place.

A RESULT's face entries are built here (a volunteer's worker, from compute's typed faces),
checked and parsed here (the requester, right after protocol.decode: an entry that is not a face
is a malformed message) into a checks.BatchAnswer; WELCOME's params are built and read here too.
swarm/protocol.py keeps the framing: message types, field types, sizes and counts.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from p2p_attendance.attendance.model import Face
from p2p_attendance.compute.batch import JobParams
from p2p_attendance.compute.engine import DetectionSettings
from p2p_attendance.peertext import check_peer_text
from p2p_attendance.swarm.checks import BatchAnswer
from p2p_attendance.swarm.protocol import ProtocolError

FACE_KEYS = {"box", "student_id", "distance", "score"}
MAX_BOX_COORDINATE = 100_000
MAX_FACE_NUMBER = 100  # |distance| and |score|; a descriptor distance is at most ~2
MAX_SENT_DISTANCE = 99.0  # an empty roster's distance is infinite, which JSON cannot carry


def face_entry(face: Face) -> dict:
    """One face as RESULT carries it."""
    return {
        "box": [int(v) for v in face.box],
        "student_id": face.student_id,
        "distance": round(min(face.distance, MAX_SENT_DISTANCE), 5),
        "score": round(face.score, 4),
    }


def result_frames(entries: list[dict], faces: list[list[Face]]) -> list[dict]:
    """RESULT's frames field: each BATCH entry's token with the faces found in that frame. Checked
    as the requester will check it (ProtocolError), as protocol.encode checks what it sends."""
    frames = [{"token": entry["token"], "faces": [face_entry(f) for f in found]} for entry, found in zip(entries, faces)]
    for frame in frames:
        for face in frame["faces"]:
            parse_face(face)
    return frames


def parse_face(entry: object) -> Face:
    """A face entry from a peer as a Face, or ProtocolError: exactly its four keys, a box of four
    plain integers, a printable bounded name or null, finite bounded numbers."""
    if not isinstance(entry, dict) or set(entry) != FACE_KEYS:
        raise ProtocolError("RESULT face must have exactly box, student_id, distance, score")
    box = entry["box"]
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_BOX_COORDINATE for v in box)):
        raise ProtocolError("RESULT face box invalid")
    student_id = entry["student_id"]
    if student_id is not None:
        try:
            check_peer_text(student_id, 200, "RESULT face student_id")
        except ValueError as exc:
            raise ProtocolError(str(exc)) from None
    numbers = []
    for key in ("distance", "score"):
        value = entry[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or abs(value) > MAX_FACE_NUMBER:
            raise ProtocolError(f"RESULT face {key} invalid")
        numbers.append(float(value))
    return Face(tuple(box), student_id, *numbers)


def parse_result(frames: list[dict], encodings: bytes) -> BatchAnswer:
    """RESULT's frames (as protocol.decode let them through: per frame a token and a bounded list)
    and its encodings part as a typed answer; ProtocolError for any entry that is not a face.
    Whether the answer can be true (boxes, encodings, names) is checks.py's question."""
    faces_by_frame = [[parse_face(face) for face in entry["faces"]] for entry in frames]
    rows = np.frombuffer(encodings, np.float32).reshape(-1, 128)
    bounds = np.cumsum([0, *(len(f) for f in faces_by_frame)])
    return BatchAnswer(faces_by_frame, [rows[a:b] for a, b in itertools.pairwise(bounds)])


def params_fields(params: JobParams) -> dict:
    """WELCOME's params field (protocol.py checks each one's range on arrival)."""
    return {"tolerance": params.tolerance, "upsample": params.settings.upsample, "min_score": params.settings.min_score}


def job_params(fields: dict, roster_ids: list[str], encodings: bytes) -> JobParams:
    """A checked WELCOME's params, roster ids and roster encodings as the job a worker runs."""
    matrix = np.frombuffer(encodings, np.float32).reshape(-1, 128).copy()
    return JobParams(roster_ids, matrix, float(fields["tolerance"]), DetectionSettings(int(fields["upsample"]), float(fields["min_score"])))
