"""A hostile requester against a volunteer (issue 13, item 2): frames that decode to gigabytes,
an upsample the app does not offer, batches beyond the credit granted, messages of too many parts,
and a memory limit per worker process."""
import os
import resource
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import zmq

from p2p_attendance.compute.batch import BatchProcessor, JobParams
from p2p_attendance.compute.video import decode_jpeg_rgb, encode_jpeg, jpeg_size
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.security import key_to_hex, new_keypair, server_socket_options

CODE = "424242"
MiB = 1024 * 1024


def fill_byte_jpeg(side: int = 9000) -> bytes:
    """A real side x side JPEG (mostly flat: ~1 MB) whose header a reader that ignores fill bytes
    misreads as 16x16: one 0xFF fill byte before a COM segment, and a fake frame header inside it
    exactly where such a reader lands."""
    ok, real = cv2.imencode(".jpg", np.full((side, side), 128, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 5])
    real = real.tobytes()
    length = 0xFFFF
    comment = bytearray(length - 2)
    start = 2 + 1 + 2 + 2  # SOI, the fill byte, the COM marker, its length
    landing = 2 + 2 + ((0xFE << 8) | (length >> 8))  # the fill byte read as a marker, "FE" + length's high byte as its length
    fake_sof = b"\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    comment[landing - start : landing - start + len(fake_sof)] = fake_sof
    return real[:2] + b"\xff" + b"\xff\xfe" + length.to_bytes(2, "big") + bytes(comment) + real[2:]


def test_fill_byte_jpeg_declaring_16px_but_decoding_at_9000px_is_refused():
    attack = fill_byte_jpeg()
    assert len(attack) < proto.MAX_JPEG_BYTES  # it travels in one legal BATCH part
    assert cv2.imdecode(np.frombuffer(attack, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (9000, 9000)  # what the decoder sees
    decoded = None
    try:
        decoded = decode_jpeg_rgb(attack)
        outcome = f"decoded {decoded.shape[0] * decoded.shape[1]:,} pixels"
    except ValueError as exc:
        outcome = f"refused: {exc}"
    print(f"\nfill-byte JPEG of {len(attack) // 1024} KB: jpeg_size reads {jpeg_size(attack)}; {outcome}")
    assert outcome.startswith("refused"), outcome
    assert jpeg_size(attack) == (9000, 9000)


def test_jpeg_size_reads_fill_bytes_and_standalone_markers_like_the_decoder():
    real = encode_jpeg(np.zeros((48, 64, 3), np.uint8))
    assert jpeg_size(real) == (64, 48)
    padded = real[:2] + b"\xff\xff\xff" + real[2:]  # fill bytes before the first segment
    assert jpeg_size(padded) == (64, 48) and decode_jpeg_rgb(padded).shape == (48, 64, 3)
    assert jpeg_size(real[:2] + b"\x00" + real[2:]) is None  # garbage between segments: the decoder would skip it, we refuse
    assert jpeg_size(b"\xff\xd8\xff\xda\x00\x02") is None  # a scan before any frame header


@pytest.mark.slow
def test_a_workers_opencv_decoder_refuses_more_pixels_than_a_frame_may_have(tmp_path):
    """The forkserver that forks the workers caps OpenCV's decoder before it imports cv2: even a
    JPEG whose header passed every check of ours is refused inside the decoder, before allocation."""
    big = tmp_path / "big.jpg"
    big.write_bytes(encode_jpeg(np.zeros((4104, 4104, 3), np.uint8), 5))  # just over 4096 px a side
    script = (
        "import sys, numpy as np\n"
        "import p2p_attendance.swarm.preload\n"
        "import cv2\n"
        "try:\n"
        "    image = cv2.imdecode(np.fromfile(sys.argv[1], np.uint8), cv2.IMREAD_COLOR)\n"
        "    print('decoded', image.shape[0] * image.shape[1])\n"
        "except cv2.error:\n"
        "    print('refused by the decoder')\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(big)], capture_output=True, text=True, timeout=120)
    print(out.stdout.strip())
    assert out.stdout.strip() == "refused by the decoder", out.stderr[-2000:]


def test_upsample_3_from_the_wire_is_refused():
    welcome = dict(job_id="j", roster_ids=[], heartbeat_s=1.0)
    proto.encode("WELCOME", [b""], params={"tolerance": 0.6, "upsample": 2, "min_score": 0.0}, **welcome)
    with pytest.raises(proto.ProtocolError, match="upsample"):
        proto.encode("WELCOME", [b""], params={"tolerance": 0.6, "upsample": 3, "min_score": 0.0}, **welcome)


def test_a_frame_whose_upsampled_search_exceeds_the_budget_is_refused_not_searched(engine):
    processor = BatchProcessor(engine)
    processor.start_job(JobParams.from_wire({"tolerance": 0.6, "upsample": 2, "min_score": 0.0}, [], b""))
    side = 2048  # 4.2 M pixels, 67 M once upsampled twice: more than a 1920 px square at upsample 2
    jpeg = encode_jpeg(np.full((side, side, 3), 100, np.uint8), 50)
    started = time.monotonic()
    try:
        processor.process([{"index": 0, "time_s": 0.0}], [jpeg])
        outcome = "searched"
    except ValueError as exc:
        outcome = f"refused: {exc}"
    print(f"\n{side}x{side} at upsample 2: {outcome} in {time.monotonic() - started:.2f} s")
    assert outcome.startswith("refused")
    # what an honest job sends at its largest is still searched
    processor.process([{"index": 0, "time_s": 0.0}], [encode_jpeg(np.full((1080, 1920, 3), 100, np.uint8), 50)])
