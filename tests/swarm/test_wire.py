"""swarm/wire.py: typed results and params <-> message fields, and a peer's face entries checked."""
import math
import random

import numpy as np
import pytest

from p2p_attendance.attendance.model import Face
from p2p_attendance.compute.batch import JobParams
from p2p_attendance.compute.engine import DetectionSettings
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm import wire
from p2p_attendance.swarm.protocol import ProtocolError

FACE = {"box": [1, 2, 30, 40], "student_id": "ada", "distance": 0.31, "score": 1.2}


def result_message(faces: list[dict], encodings: bytes) -> proto.Message:
    return proto.decode(proto.encode("RESULT", [encodings], batch_id=1, frames=[{"token": 3, "faces": faces}]))


def test_a_result_built_from_typed_faces_parses_back_to_the_same_faces_and_encodings():
    faces = [[Face((1, 2, 30, 40), "ada", 0.3123456789, 1.23456), Face((50, 60, 90, 100), None, math.inf, 0.5)], []]
    rows = np.arange(2 * 128, dtype=np.float32).reshape(2, 128)
    frames = wire.result_frames([{"token": 7}, {"token": 8, "keyframe": True}], faces)
    msg = proto.decode(proto.encode("RESULT", [rows.tobytes()], batch_id=1, frames=frames))
    answer = wire.parse_result(msg["frames"], msg.parts[0])
    assert [f["token"] for f in msg["frames"]] == [7, 8]
    # On the wire a distance keeps 5 decimals, a score 4, and an empty roster's infinity is 99.
    assert answer.faces == [[Face((1, 2, 30, 40), "ada", 0.31235, 1.2346), Face((50, 60, 90, 100), None, 99.0, 0.5)], []]
    assert np.array_equal(answer.encodings[0], rows) and answer.encodings[1].shape == (0, 128)


def test_job_params_survive_the_welcome_round_trip():
    params = JobParams(["a", "b"], np.ones((2, 128), np.float32), 0.55, DetectionSettings(2, 0.1))
    msg = proto.decode(proto.encode("WELCOME", [params.roster_encodings.tobytes()], job_id="j", params=wire.params_fields(params),
                                    roster_ids=params.roster_ids, heartbeat_s=1.0))
    back = wire.job_params(msg["params"], msg["roster_ids"], msg.parts[0])
    assert (back.roster_ids, back.tolerance, back.settings) == (["a", "b"], 0.55, DetectionSettings(2, 0.1))
    assert np.array_equal(back.roster_encodings, params.roster_encodings)


@pytest.mark.parametrize(
    "face, why",
    [
        ({**FACE, "box": [1, 2, 3]}, "box"),
        ({**FACE, "box": [1, 2, 3, True]}, "box"),
        ({**FACE, "box": [1, 2, 3, 10**6]}, "box"),
        ({**FACE, "distance": "NaN"}, "distance"),
        ({**FACE, "score": 1e300}, "score"),
        ({**FACE, "student_id": "ada\u202e"}, "student_id"),
        ({**FACE, "student_id": 5}, "student_id"),
        ({k: v for k, v in FACE.items() if k != "student_id"}, "exactly"),
        ({**FACE, "extra": 1}, "exactly"),
        ([1, 2, 30, 40], "exactly"),
    ],
)
def test_a_hostile_face_entry_is_refused_as_a_protocol_error(face, why):
    msg = result_message([face], b"x" * 512)  # the framing is legal: only the entry is not a face
    with pytest.raises(ProtocolError, match=why):
        wire.parse_result(msg["frames"], msg.parts[0])


def test_garbled_results_only_ever_raise_protocol_error():
    rng = random.Random(7)
    valid = proto.encode("RESULT", [np.ones(256, np.float32).tobytes()], batch_id=1, frames=[{"token": 3, "faces": [FACE, FACE]}])
    parsed = 0
    for _ in range(3000):
        frames = [bytearray(f) for f in valid]
        for _ in range(rng.randint(1, 3)):
            part = rng.randrange(len(frames))
            if frames[part]:
                frames[part][rng.randrange(len(frames[part]))] = rng.randrange(256)
        try:
            msg = proto.decode([bytes(f) for f in frames])
            wire.parse_result(msg["frames"], msg.parts[0])
            parsed += 1
        except ProtocolError:
            pass
    assert parsed > 0  # some changes hit only the encodings: still a legal message


def test_a_face_the_requester_would_refuse_is_not_built():
    with pytest.raises(ProtocolError, match="box"):
        wire.result_frames([{"token": 1}], [[Face((-3, 2, 30, 40), None, 0.7, 0.5)]])
