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
from conftest import AdmissionDoor, never_ready_worker

from p2p_attendance.compute.batch import BatchProcessor
from p2p_attendance.compute.video import decode_jpeg_rgb, encode_jpeg, jpeg_size
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.security import key_to_hex, new_keypair, server_socket_options
from p2p_attendance.swarm.wire import job_params
from p2p_attendance.swarm.workers import BatchDone, WorkFailed

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
    processor.start_job(job_params({"tolerance": 0.6, "upsample": 2, "min_score": 0.0}, [], b""))
    side = 2048  # 4.2 M pixels, 67 M once upsampled twice: more than a 1920 px square at upsample 2
    jpeg = encode_jpeg(np.full((side, side, 3), 100, np.uint8), 50)
    started = time.monotonic()
    try:
        processor.process([{"token": 0}], [jpeg])
        outcome = "searched"
    except ValueError as exc:
        outcome = f"refused: {exc}"
    print(f"\n{side}x{side} at upsample 2: {outcome} in {time.monotonic() - started:.2f} s")
    assert outcome.startswith("refused")
    # what an honest job sends at its largest is still searched
    processor.process([{"token": 0}], [encode_jpeg(np.full((1080, 1920, 3), 100, np.uint8), 50)])


class FakeRequester:
    """A hostile requester on loopback: a real ROUTER with CurveZMQ behind an admission port that
    knows the code (AdmissionDoor), and a real volunteer process (`p2p_attendance volunteer`) that
    is admitted and joins it; it speaks the protocol as far as it pleases."""

    def __init__(self, tmp_path):
        public, secret = new_keypair()
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.ROUTER)
        server_socket_options(self.sock, public, secret)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.door = AdmissionDoor(CODE, public, self.sock.bind_to_random_port("tcp://127.0.0.1"))
        self.stderr = open(tmp_path / "volunteer.log", "w+")
        command = [sys.executable, "-m", "p2p_attendance", "volunteer", "--connect", f"tcp://127.0.0.1:{self.door.port}/{key_to_hex(public)}",
                   "--join-code", CODE, "--cores", "1", "--name", "victim", "--single-job", "--no-discovery"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.identity = None
        self.joins = 0
        self.credit = 0
        self.answers = []  # RESULT and ERROR messages
        self._last_beat = 0.0

    def pump(self, seconds: float, until=lambda: False) -> None:
        """Receive for a while, answering as an honest requester would (heartbeats)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            if time.monotonic() - self._last_beat > 0.5 and self.identity is not None:
                self.send("HEARTBEAT")
                self._last_beat = time.monotonic()
            if not self.sock.poll(50):
                continue
            identity, *frames = self.sock.recv_multipart()
            msg = proto.decode(frames)
            if msg.type == "HELLO":  # the first, or the volunteer joining again after it gave us up for dead
                self.identity, self.credit, self.joins = identity, 0, self.joins + 1
                self.send("WELCOME", [b""], job_id="hostile", params={"tolerance": 0.6, "upsample": 0, "min_score": 0.0}, roster_ids=[], heartbeat_s=1.0)
            elif msg.type == "READY":
                self.credit += msg["credit"]
            elif msg.type in ("RESULT", "ERROR"):
                self.answers.append(msg)

    def send(self, msg_type, parts=None, **fields):
        self.sock.send_multipart([self.identity, *proto.encode(msg_type, parts, **fields)], copy=False)

    def send_raw(self, frames):
        self.sock.send_multipart([self.identity, *frames], copy=False)

    def join(self):
        self.pump(120, until=lambda: self.credit > 0)
        assert self.credit > 0, self.log()
        self.pump(1.0)

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak since reset_peak) resident memory of the volunteer process, MB."""
        status = open(f"/proc/{self.process.pid}/status").read()
        values = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM"))}
        return values["VmRSS"], values["VmHWM"]

    def reset_peak(self) -> None:
        with open(f"/proc/{self.process.pid}/clear_refs", "w") as f:
            f.write("5")

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-3000:]

    def close(self):
        if self.identity is not None:
            try:
                self.send("BYE", reason="done")
            except zmq.ZMQError:
                pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.door.close()
        self.sock.close()
        self.context.term()
        self.stderr.close()


@pytest.fixture
def hostile_requester(tmp_path):
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("peak memory is read from /proc")
    requester = FakeRequester(tmp_path)
    yield requester
    requester.close()


def _padded_frame(size: int) -> bytes:
    """A small real JPEG padded to `size` bytes (decoders ignore what follows the end of image)."""
    jpeg = encode_jpeg(np.full((480, 640, 3), 100, np.uint8))
    return jpeg + bytes(size - len(jpeg))


@pytest.mark.slow
def test_batches_beyond_the_credit_granted_are_dropped_not_queued(hostile_requester):
    hostile_requester.join()
    granted = hostile_requester.credit
    part = _padded_frame(proto.MAX_JPEG_BYTES)
    rss_before, _ = hostile_requester.rss_mb()
    hostile_requester.reset_peak()
    flood = 100
    for batch_id in range(flood):  # all at once, whatever the credit says
        hostile_requester.send("BATCH", [part], batch_id=batch_id, frames=[{"token": batch_id}])
    hostile_requester.pump(10.0)
    _, peak = hostile_requester.rss_mb()
    answered = len(hostile_requester.answers)
    print(f"\n{flood} batches of 4 MiB sent against a credit of {granted}: {answered} answered in 10 s, "
          f"volunteer RSS {rss_before:.0f} MB -> peak {peak:.0f} MB (+{peak - rss_before:.0f} MB)")
    assert hostile_requester.process.poll() is None, hostile_requester.log()
    assert answered <= hostile_requester.credit  # never more work than it asked for
    assert peak - rss_before < 150
    assert "beyond the credit" in hostile_requester.log()


@pytest.mark.parametrize("part_mib", [1, 4])
@pytest.mark.slow
def test_one_message_of_150_parts_is_dropped_by_its_part_count_before_copying(hostile_requester, part_mib):
    """ZeroMQ caps each part (MAXMSGSIZE), not their number, and hands over a message only when
    all of it has arrived: it holds one copy of it whatever we do; we make no second one, and a
    message slower to arrive than the requester's liveness (3 s) ends that connection."""
    hostile_requester.join()
    part = bytes(part_mib * MiB)
    header = proto.encode("BATCH", [part], batch_id=0, frames=[{"token": 0}])[0]
    rss_before, _ = hostile_requester.rss_mb()
    hostile_requester.reset_peak()
    hostile_requester.send_raw([header, *[part] * 150])
    hostile_requester.pump(8.0)
    _, peak = hostile_requester.rss_mb()
    log = hostile_requester.log()
    how = "dropped by its part count" if "151 parts" in log else "cut off by liveness (rejoined)" if hostile_requester.joins > 1 else "decoded, then dropped"
    print(f"\n150 parts of {part_mib} MiB in one message: {how}; volunteer RSS {rss_before:.0f} MB -> peak {peak:.0f} MB (+{peak - rss_before:.0f} MB)")
    assert hostile_requester.process.poll() is None, log
    if part_mib == 1:  # arrives well within the liveness: the part count must be what drops it
        assert how == "dropped by its part count", log
    assert peak - rss_before < 1.2 * 150 * part_mib  # at most ZeroMQ's own copy of it
    # still working: an honest batch after it is answered
    hostile_requester.pump(30.0, until=lambda: hostile_requester.credit > 0)
    hostile_requester.send("BATCH", [_padded_frame(10_000)], batch_id=1, frames=[{"token": 1}])
    hostile_requester.pump(30.0, until=lambda: hostile_requester.answers)
    assert [m.type for m in hostile_requester.answers] == ["RESULT"], log


def _vm_size_mb(pid: int) -> float:
    return next(int(line.split()[1]) / 1024 for line in open(f"/proc/{pid}/status") if line.startswith("VmSize"))


def _address_space_limit(pid: int) -> str:
    return next(line.split()[3] for line in open(f"/proc/{pid}/limits") if line.startswith("Max address space"))


def _run(pool, slot, token, jpeg, timeout=120):
    pool.submit(slot, token, [{"token": 0}], [jpeg])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in pool.poll():
            if message.token == token:
                return message
        time.sleep(0.05)
    raise AssertionError(f"no answer for {token}")


def _idle_slot(pool):
    """The pool's idle worker once one is ready (a restarted one loads its models first)."""
    deadline = time.monotonic() + 120
    while (slot := pool.idle_slot()) is None and time.monotonic() < deadline:
        pool.poll()
        time.sleep(0.05)
    assert slot is not None
    return slot


def _ready_pool(**options):
    from p2p_attendance.swarm.workers import WorkerPool

    pool = WorkerPool(1, **options)
    pool.start_job({"tolerance": 0.6, "upsample": 2, "min_score": 0.0}, [], b"")
    deadline = time.monotonic() + 120
    while not pool.all_ready() and time.monotonic() < deadline:
        pool.poll()
        time.sleep(0.1)
    assert pool.all_ready()
    return pool


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/limits") or not hasattr(resource, "RLIMIT_AS"), reason="Linux address-space limits")
def test_a_frame_past_a_workers_memory_limit_ends_its_batch_not_the_laptop():
    pool = _ready_pool()
    try:
        pid = pool.slots[0].process.pid
        limit = _address_space_limit(pid)
        loaded_mb = _vm_size_mb(pid)
    finally:
        pool.close()
    print(f"\nworker address space limit: {limit} (loaded: {loaded_mb:.0f} MB mapped)")
    from p2p_attendance.swarm.workers import WORKER_ADDRESS_SPACE_BYTES

    assert limit == str(WORKER_ADDRESS_SPACE_BYTES)
    # The same mechanism with the limit 150 MB above what a loaded worker maps: a 1920x1080 frame
    # at upsample 2 (~250 MB more) cannot fit; the batch fails, the pool goes on with the next.
    pool = _ready_pool(memory_limit=int((loaded_mb + 150) * MiB))
    try:
        big = encode_jpeg(np.full((1080, 1920, 3), 100, np.uint8), 50)
        failed = _run(pool, pool.slots[0], "big", big)
        print(f"1920x1080 at upsample 2 under {loaded_mb + 150:.0f} MB: {failed}, restarts {pool.restarts}")
        assert isinstance(failed, WorkFailed)
        pool.start_job({"tolerance": 0.6, "upsample": 0, "min_score": 0.0}, [], b"")
        slot = _idle_slot(pool)
        answer = _run(pool, slot, "small", encode_jpeg(np.full((240, 320, 3), 100, np.uint8)))
        assert isinstance(answer, BatchDone), answer
    finally:
        pool.close()


@pytest.mark.slow
def test_a_worker_that_dies_mid_batch_is_replaced_and_its_batch_answered_with_an_error():
    pool = _ready_pool()
    try:
        slot = pool.slots[0]
        pool.submit(slot, "doomed", [{"token": 0}], [encode_jpeg(np.full((1080, 1920, 3), 100, np.uint8), 50)])
        time.sleep(0.5)
        os.kill(slot.process.pid, 9)  # what the kernel does to a process past its memory
        answers = []
        deadline = time.monotonic() + 30
        while not answers and time.monotonic() < deadline:
            answers = pool.poll()
            time.sleep(0.05)
        assert [(type(m), m.token) for m in answers] == [(WorkFailed, "doomed")]
        assert pool.alive(), "no worker left: the volunteer would leave the job"
        replacement = _idle_slot(pool)
        assert replacement.process.pid != slot.process.pid
        answer = _run(pool, replacement, "next", encode_jpeg(np.full((240, 320, 3), 100, np.uint8)))
        assert isinstance(answer, BatchDone), answer
    finally:
        pool.close()


def test_a_dead_workers_pipe_is_not_polled_once_it_will_not_be_restarted():
    """After MAX_RESTARTS a dead worker stays dead; its pipe is at its end and always readable, so
    polling it would wake the volunteer's loop at once, forever (a core burnt on the laptop)."""
    import multiprocessing

    from p2p_attendance.swarm.workers import MAX_RESTARTS, WorkerPool, _Slot

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    dead = context.Process(target=int)
    dead.start()
    dead.join(30)
    theirs.close()  # the worker's end went with it
    pool = WorkerPool.__new__(WorkerPool)  # no real workers: only the pipe bookkeeping is under test
    pool.slots, pool.restarts, pool._failed = [_Slot(dead, ours)], MAX_RESTARTS, []
    assert ours.poll(0)  # at its end: readable at once
    assert pool.fileno_list() == []
    assert pool.poll() == [] and pool.fileno_list() == []  # not restarted, still not polled
    ours.close()


def test_no_batch_is_handed_to_a_worker_still_loading_and_a_hung_one_costs_one_wait():
    """A worker that is not ready reads no pipe: a 2 MB batch handed to it blocked the volunteer's
    loop (no heartbeats, stop unheard) for as long as it loaded, for ever if it hung; and each
    reconnect waited for it again."""
    from p2p_attendance.swarm.workers import WorkerPool

    pool = WorkerPool(1, worker_main=never_ready_worker)
    try:
        assert pool.wait_ready(1.0) is False
        assert pool.idle_slot() is None  # before: the loading worker's slot, and submit() then blocked
        began = time.monotonic()
        assert pool.wait_ready(1.0) is False
        assert time.monotonic() - began < 0.5  # before: another full wait
    finally:
        pool.close()


def test_a_batch_handed_to_a_worker_that_just_died_fails_it_instead_of_raising():
    from p2p_attendance.swarm.workers import WorkerPool
    from p2p_attendance.tools.simulate_volunteer import stand_in_main

    pool = WorkerPool(1, worker_main=stand_in_main)
    try:
        assert pool.wait_ready(60)
        slot = pool.idle_slot()
        os.kill(slot.process.pid, 9)
        slot.process.join(10)
        pool.submit(slot, "late", [{"token": 0}], [b"x" * (2 * MiB)])  # before: BrokenPipeError out of the loop
        answers = pool.poll()
        assert [(type(m), m.token) for m in answers] == [(WorkFailed, "late")]
    finally:
        pool.close()
