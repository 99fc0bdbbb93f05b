import os
import socket
import sys
import threading
from pathlib import Path

import pytest

SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
needs_shared_faces = pytest.mark.skipif(not (SHARED_FACES / "enroll").is_dir(), reason="../shared/faces is not present")


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Nothing a test does lands in the real user's data, config or log folders."""
    home = tmp_path_factory.mktemp("user")
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        folder = home / var.lower()
        folder.mkdir()
        monkeypatch.setenv(var, str(folder))
    # mDNS in tests (and in every process they start) stays on loopback, never the real LAN.
    monkeypatch.setenv("P2P_ATTENDANCE_MDNS_INTERFACES", "127.0.0.1")
    yield


@pytest.fixture(scope="session")
def engine():
    from p2p_attendance.compute.engine import FaceEngine

    return FaceEngine()


@pytest.fixture(scope="session")
def sample_faces():
    from p2p_attendance.compute.video import read_image_rgb
    from p2p_attendance.tools.demo import astronaut_path, grace_hopper_path

    return {"astronaut": read_image_rgb(astronaut_path()), "grace": read_image_rgb(grace_hopper_path())}


@pytest.fixture(scope="session")
def demo_material(tmp_path_factory, engine):
    """A 20-second composed class (two real faces, one absentee, one stranger) and its photos."""
    from p2p_attendance.tools.demo import build_demo

    return build_demo(tmp_path_factory.mktemp("demo"), engine, duration_s=20)


def app_command():
    return [sys.executable, "-m", "p2p_attendance"]


def subprocess_env(tmp_path):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def child_env() -> dict:
    """Environment for a Python child that must import this checkout (discovery tests); the
    child chooses its mDNS interfaces itself."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("P2P_ATTENDANCE_MDNS_INTERFACES", None)
    return env


def admitted_dealer(line, context, code):
    """A raw DEALER on a job's data socket, after admission with `code` (tests' own peers)."""
    import zmq

    from p2p_attendance.swarm.security import client_socket_options, split_connect
    from p2p_attendance.swarm.volunteer import JobTarget, admit

    endpoint, key = split_connect(line)
    keypair = zmq.curve_keypair()
    data_endpoint = admit(JobTarget(endpoint, key, code), keypair)
    sock = context.socket(zmq.DEALER)
    client_socket_options(sock, key, keypair)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(data_endpoint)
    return sock


class AdmissionDoor(threading.Thread):
    """The requester's side of admission for a test that plays the requester itself: a loopback
    TCP port where a real volunteer proves `code` by SPAKE2 (security.RequesterPake, the
    requester's own exchange) and is told `data_port`; one connection after another until close().
    No attempt budget: the volunteer it serves is the test's own."""

    def __init__(self, code: str, server_key: bytes, data_port: int):
        super().__init__(daemon=True)
        self.code, self.server_key, self.data_port = code, server_key, data_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.admitted = 0
        self._closed = threading.Event()
        self.start()

    def run(self):
        while not self._closed.is_set():
            try:
                conn, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                try:
                    self._admit(conn)
                except (OSError, ValueError):  # a broken or slow exchange: that volunteer tries again
                    pass

    def _admit(self, conn) -> None:
        from zmq.utils import z85

        from p2p_attendance.swarm import protocol as proto
        from p2p_attendance.swarm.security import RequesterPake

        def reply(msg_type, parts=None, **fields):
            conn.sendall(proto.pack_admission(proto.encode(msg_type, parts, **fields)))

        conn.settimeout(5)
        reader, pake = proto.AdmissionReader(), None
        while data := conn.recv(proto.MAX_ADMISSION_BYTES):
            for frames in reader.feed(data):
                msg = proto.decode(frames)
                if msg.type == "PAKE" and pake is None:
                    pake = RequesterPake(self.code, self.server_key, z85.encode(msg.parts[0]), msg.parts[1])
                    reply("PAKE_REPLY", [pake.reply])
                elif msg.type == "CONFIRM" and pake is not None and pake.volunteer_proved(msg.parts[0]):
                    reply("ADMIT", [pake.admit_mac(self.data_port)], data_port=self.data_port)
                    self.admitted += 1
                    return
                else:
                    reply("REJECT", reason="wrong join code")
                    return

    def close(self) -> None:
        self._closed.set()
        self.join(5)
        self.server.close()


class EventLoopProbe:
    """Beats every 10 ms on the GUI thread: the gaps between beats say how long the event loop
    was kept from answering. Shared test machines preempt any process now and then, so a test
    reads the 95th percentile (did the screen keep up all along?) beside the worst gap."""

    def __init__(self):
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.gaps: list[int] = []
        self._clock = QElapsedTimer()
        self._clock.start()
        self._last = 0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._beat)

    def _beat(self) -> None:
        now = self._clock.elapsed()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self._last = self._clock.elapsed()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def latency_ms(self) -> tuple[int, int]:
        """(95th percentile, worst) of the delays past the beat's own interval."""
        ordered = sorted(self.gaps)
        return ordered[int(len(ordered) * 0.95)] - self.timer.interval(), ordered[-1] - self.timer.interval()


def tiny_video(path):
    """A 2-second 64x64 MPEG-4 video of flat grey frames: a job with no faces, fast to run."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 10, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
