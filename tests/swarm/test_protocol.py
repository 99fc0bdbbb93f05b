"""The wire protocol: every message round-trips, and anything malformed is a ProtocolError."""
import json
import random

import numpy as np
import pytest

from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.protocol import ProtocolError, decode, encode

FRAME = {"token": 3}
FACE = {"box": [1, 2, 30, 40], "student_id": "ada", "distance": 0.31, "score": 1.2}


def header(**fields):
    return json.dumps({"v": proto.PROTOCOL_VERSION, **fields}).encode()


def test_every_message_type_round_trips():
    enc = np.ones((2, 128), np.float32).tobytes()
    samples = [
        encode("HELLO", name="lab-pc-3", cores=4, app_version="0.1.0"),
        encode("WELCOME", [enc], job_id="j1", params={"tolerance": 0.6, "upsample": 1, "min_score": 0.3}, roster_ids=["a", "b"], heartbeat_s=1.0),
        encode("REJECT", reason="wrong join code"),
        encode("READY", credit=3),
        encode("BATCH", [b"\xff\xd8jpeg"], batch_id=7, frames=[FRAME], seats=[[10, 20, 50, 60]]),
        encode("BATCH", [b"\xff\xd8jpeg", b"\x00\x00\x01\x65", b"\x01\x64"], batch_id=8,
               frames=[FRAME, {**FRAME, "keyframe": True}], codec="h264", extradata=True),
        encode("RESULT", [enc[:512], b"crop"], batch_id=7, frames=[{**FRAME, "faces": [FACE]}], busy_s=0.2),
        encode("HEARTBEAT"),
        encode("BYE", reason="done"),
        encode("ERROR", batch_id=7, message="bad jpeg"),
        encode("PAKE", [b"k" * 32, b"m" * 33]),
        encode("PAKE_REPLY", [b"m" * 33]),
        encode("CONFIRM", [b"c" * 32]),
        encode("ADMIT", [b"c" * 32], data_port=5556),
    ]
    types = [decode(s).type for s in samples]
    assert list(dict.fromkeys(types)) == list(proto.SPECS)
    assert proto.batch_seats(decode(samples[4])) == ((10, 20, 50, 60),) and proto.batch_seats(decode(samples[5])) == ()
    jpegs, codec = proto.batch_frames(decode(samples[5]))
    assert jpegs == [b"\xff\xd8jpeg", b"\x00\x00\x01\x65"] and codec == ("h264", b"\x01\x64")
    assert proto.batch_frames(decode(samples[4])) == ([b"\xff\xd8jpeg"], None)
    welcome = decode(samples[1])
    assert welcome["roster_ids"] == ["a", "b"] and len(welcome.parts[0]) == 1024


@pytest.mark.parametrize(
    "frames, why",
    [
        ([], "empty"),
        ([b"\x80\x81"], "not JSON"),
        ([b"[1,2]"], "not a JSON object"),
        ([header(type="HELLO", name="x", cores=1, app_version="1").replace(f'"v": {proto.PROTOCOL_VERSION}'.encode(), b'"v": 99')], "version"),
        ([header(type="PICKLE")], "unknown message type"),
        ([header(type="READY", credit="3")], "should be int"),
        ([header(type="READY", credit=True)], "should be int"),
        ([header(type="READY", credit=10**6)], "out of range"),
        ([header(type="READY")], "missing credit"),
        ([header(type="READY", credit=1, extra=1)], "unexpected field"),
        ([header(type="HELLO", name="x" * 1000, cores=1, app_version="1")], "longer than"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME, FRAME]), b"j"], "do not match"),
        ([header(type="BATCH", batch_id=1, frames=[{"token": -1}]), b"j"], "token"),
        ([header(type="BATCH", batch_id=1, frames=[{"token": 2**53}]), b"j"], "token"),
        # Frame indexes and times never travel: a volunteer must not tell a check copy by them.
        ([header(type="BATCH", batch_id=1, frames=[{"index": 3, "time_s": 1.5}]), b"j"], "entry invalid"),
        ([header(type="RESULT", batch_id=1, frames=[{**FRAME, "time_s": 1.5, "faces": []}]), b""], "entry invalid"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME]), b"j" * (proto.MAX_JPEG_BYTES + 1)], "too large"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], codec="mpeg4"), b"j"], "codec not accepted"),
        ([header(type="BATCH", batch_id=1, frames=[{**FRAME, "keyframe": True}]), b"j"], "keyframe flag"),
        ([header(type="BATCH", batch_id=1, frames=[{**FRAME, "keyframe": 1}], codec="h264"), b"j"], "keyframe flag"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], extradata=True), b"j", b"x"], "without a codec"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], codec="h264", extradata=True), b"j"], "do not match"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], codec="h264", extradata=True), b"j", b"x" * (proto.MAX_EXTRADATA_BYTES + 1)], "extradata too large"),
        ([header(type="RESULT", batch_id=1, frames=[{**FRAME, "faces": [FACE]}]), b""], "encodings do not match"),
        ([header(type="WELCOME", job_id="j", params={"tolerance": 9, "upsample": 1, "min_score": 0}, roster_ids=[], heartbeat_s=1), b""], "tolerance"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], seats=[[0, 0, 10, 10]] * (proto.MAX_SEATS + 1)), b"j"], "too many seats"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], seats=[[10, 0, 10, 10]]), b"j"], "seat invalid"),  # no width
        ([header(type="BATCH", batch_id=1, frames=[FRAME], seats=[[-1, 0, 10, 10]]), b"j"], "seat invalid"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], seats=[[0, 0, 10, 99999]]), b"j"], "seat invalid"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], seats=[[0, 0, 10.5, 10]]), b"j"], "seat invalid"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], seats=[[0, 0, 60, 1080]]), b"j"], "seat invalid"),  # a strip: a crop the frame's height
        ([header(type="BATCH", batch_id=1, frames=[FRAME], seats=[[True, 0, 10, 10]]), b"j"], "seat invalid"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], seats=[[0, 0, 10]]), b"j"], "seat invalid"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], seats=[{"box": [0, 0, 10, 10]}]), b"j"], "seat invalid"),
        ([header(type="BATCH", batch_id=1, frames=[FRAME], seats={"a": 1}), b"j"], "seats"),
        ([b"{" * (proto.MAX_HEADER_BYTES + 1)], "over the limit"),
        ([b'{"v":1,"type":"HELLO","name":' + b"[" * 30000], "not JSON"),  # deep nesting: RecursionError
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(frames, why):
    with pytest.raises(ProtocolError, match=why):
        decode(frames)


def test_nan_and_infinity_are_refused():
    with pytest.raises(ProtocolError):
        decode([b'{"v":%d,"type":"RESULT","batch_id":1,"busy_s":NaN,"frames":[{"token":0,"faces":[]}]}' % proto.PROTOCOL_VERSION, b""])


def test_random_garbage_only_ever_raises_protocol_error():
    rng = random.Random(5)
    valid = encode("RESULT", [np.zeros(128, np.float32).tobytes()], batch_id=1, frames=[{**FRAME, "faces": [FACE]}])
    for _ in range(3000):
        frames = [bytearray(f) for f in valid]
        for _ in range(rng.randint(1, 4)):
            part = rng.randrange(len(frames))
            if frames[part] and rng.random() < 0.7:
                frames[part][rng.randrange(len(frames[part]))] = rng.randrange(256)
            else:
                frames[part] = frames[part][: rng.randrange(len(frames[part]) + 1)]
        try:
            decode([bytes(f) for f in frames])
        except ProtocolError:
            pass


def test_admission_stream_reassembles_split_messages_and_refuses_oversized_ones():
    packed = proto.pack_admission(encode("PAKE", [b"k" * 32, b"m" * 33]))
    reader = proto.AdmissionReader()
    got = [m for i in range(len(packed)) for m in reader.feed(packed[i : i + 1])]  # one byte at a time
    assert [decode(m).type for m in got] == ["PAKE"] and reader.buffer == b""
    # A ZMTP greeting, or any big length, ends the stream at once: nothing is buffered for it.
    for junk in (b"\xff" + b"\x00" * 8 + b"\x7f", b"\x04\x01" + b"x" * 10, b"\x00\x05\x00\x09abc"):
        with pytest.raises(proto.ProtocolError):
            proto.AdmissionReader().feed(junk + b"\x00" * 2000)
    with pytest.raises(proto.ProtocolError):
        proto.pack_admission([b"x" * 2000])
    assert proto.largest_part("requester") == 32 * 64 * 512 and proto.most_parts("requester") == 2 + 32 * 64
