"""The swarm end to end on loopback: real volunteer processes, real engine, CurveZMQ."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq
from conftest import CODE, RunningJob, statuses

from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.security import split_connect
from p2p_attendance.swarm.volunteer import JobTarget, Outcome, Volunteer


@pytest.fixture
def running(demo_material, demo_roster):
    jobs = []

    def make(**options):
        job = RunningJob(demo_material.video, demo_roster, **options).start()
        jobs.append(job)
        return job

    yield make
    for job in jobs:
        job.close()


def test_kill_9_mid_job_and_wrong_code_and_late_joiner(running, demo_material):
    job = running(sample_fps=10.0)  # long enough that liveness, not the end of the job, finds the dead
    total = job.job.requester.total
    victims = [job.volunteer("alpha"), job.volunteer("bravo")]
    intruder = job.volunteer("mallory", code="000000")
    job.wait(lambda: job.frames_done() >= 8, 120, "first results")
    os.kill(victims[0].pid, signal.SIGKILL)  # no BYE: only liveness can tell
    late = job.volunteer("charlie")  # joins mid-job
    report = job.finish()

    assert intruder.wait(30) == 1 and "wrong join code" in intruder.stderr.read()
    results = job.job.requester.results
    assert sorted(results) == list(range(total))  # every sampled frame exactly once
    assert report.job.frames_processed == report.job.frames_total == total
    peers = {p.name: p for p in job.job.requester.peers.values()}
    assert "mallory" not in peers  # rejected before it was a peer: no frame, no roster
    assert peers["alpha"].state == "lost"
    assert peers["charlie"].frames > 0, "the late joiner got work"
    assert sum(p.frames for p in peers.values()) == total
    assert {p.name for p in report.job.peers} >= {"bravo", "charlie"}
    assert statuses(report) == demo_material.expected
    assert late.wait(30) == 0
    # The review's evidence: the best crop in each part of the lecture, not six adjacent seconds.
    times = [e.time_s for e in job.job.evidence_snapshot().of_student("grace_hopper")]
    assert len(times) >= 5 and times == sorted(times) and max(times) - min(times) > 10


def test_same_attendance_from_one_local_worker_and_from_three_volunteers(running):
    local = running(workers=1).finish()
    swarm = running()
    for name in ("v1", "v2", "v3"):
        swarm.volunteer(name)
    shared = swarm.finish()
    assert statuses(local) == statuses(shared)
    assert [s.frames_seen for s in local.students] == [s.frames_seen for s in shared.students]
    assert [p.name for p in local.job.peers] == ["this computer"]
    assert len(shared.job.peers) >= 2


def _hostile_messages(rng, batch_id_hint):
    valid_result = proto.encode("RESULT", [np.zeros(128, np.float32).tobytes(), b""], batch_id=batch_id_hint,
                                frames=[{"token": 0, "faces": [{"box": [0, 0, 9, 9], "student_id": "grace_hopper", "distance": 0.1, "score": 2.0}]}])
    kinds = [
        lambda: [rng.bytes(rng.integers(0, 200))],
        lambda: [b'{"v":1,"type":"RESULT"}'],
        lambda: [b'{"v":1,"type":"READY","credit":64}'],  # greedy but valid
        lambda: [b'{"v":1,"type":"HELLO","name":"again","cores":1,"app_version":"x"}'],
        lambda: valid_result,  # a result for a batch it may not hold: must not count
        lambda: [b'{"v":1,"type":"RESULT","batch_id":%d,"frames":[{"index":99999,"time_s":0,"faces":[]}]}' % rng.integers(0, 50), b""],
        lambda: [b"{" + b" " * 70000 + b"}"],  # oversized header
        lambda: [b'{"v":1,"type":"ERROR","batch_id":%d,"message":"nope"}' % rng.integers(0, 50)],
        lambda: [b'{"v":2,"type":"HEARTBEAT"}'],
    ]
    return kinds[rng.integers(len(kinds))]()


def test_a_hostile_volunteer_with_the_right_code_cannot_crash_or_corrupt_the_job(running, demo_material):
    job = running()
    honest = job.volunteer("honest")
    context = zmq.Context()
    sock = job.admitted_dealer(context)
    sock.send_multipart(proto.encode("HELLO", name="hostile", cores=2, app_version="0.1.0"))
    assert sock.poll(10000), "no WELCOME"
    assert proto.decode(sock.recv_multipart()).type == "WELCOME"
    rng = np.random.default_rng(3)
    sent = 0
    deadline = time.monotonic() + 60
    while sent < 5000 and time.monotonic() < deadline and job.thread.is_alive():
        sock.send_multipart(_hostile_messages(rng, sent % 40))
        sent += 1
        while sock.poll(0):
            sock.recv_multipart()  # it takes batches and never answers them
    sock.close()
    context.term()
    report = job.finish()
    assert sent >= 2000
    assert job.job.requester.dropped_messages > 100
    assert report.job.frames_processed == report.job.frames_total
    assert statuses(report) == demo_material.expected
    peers = {p.name: p for p in job.job.requester.peers.values()}
    assert peers["hostile"].frames == 0 and peers["hostile"].state == "quarantined"
    assert honest.wait(30) == 0


def test_volunteer_returns_to_idle_when_the_requester_dies(demo_material, demo_roster, tmp_path):
    requester = subprocess.Popen(
        [sys.executable, "-m", "p2p_attendance", "run", str(demo_material.video), "--class", "Demo class", "--workers", "0",
         "--listen", "tcp://127.0.0.1:0", "--join-code", CODE, "--sample-fps", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = None
    deadline = time.monotonic() + 60
    while line is None and time.monotonic() < deadline:
        text = requester.stderr.readline()
        if "--connect" in text:
            line = text.split("--connect ")[1].split()[0].replace(text.split("tcp://")[1].split(":")[0], "127.0.0.1", 1)
    assert line, "the requester printed no connect line"
    endpoint, key = split_connect(line)
    states = []
    volunteer = Volunteer(cores=1, name="survivor", max_retries=1, on_status=lambda s: states.append(s.state))
    stop = threading.Event()
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(volunteer.run_job(JobTarget(endpoint, key, CODE), stop)))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while "working" not in states and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "working" in states
        requester.kill()
        thread.join(30)
        assert not thread.is_alive(), "volunteer still waiting for a dead requester"
        assert outcome == [Outcome.LOST]
        assert "reconnecting" in states
    finally:
        stop.set()
        thread.join(10)
        volunteer.close()
        requester.kill()


def test_keyframes_of_a_camera_video_travel_as_they_are_with_the_same_attendance(demo_material, demo_roster, tmp_path, monkeypatch):
    from p2p_attendance.swarm import frames as requester_frames
    from p2p_attendance.tools.compose import camera_copy

    # A camera's H.264 at 8 frames/s with a keyframe a second, sampled twice a second: half the
    # samples are keyframes that travel as they are, half are decoded and sent as JPEG.
    camera = camera_copy(demo_material.video, tmp_path / "camera.mp4", seconds=20, gop=8, b_frames=0, fps=8)
    kinds = []
    payload = requester_frames.frame_payload

    def counted(frame, spec):
        entry, data = payload(frame, spec)
        kinds.append("keyframe" if entry.get("keyframe") else "jpeg")
        return entry, data

    monkeypatch.setattr(requester_frames, "frame_payload", counted)
    passed = RunningJob(camera, demo_roster, workers=1, sample_fps=2.0).start().finish()
    assert kinds.count("keyframe") >= 15 and kinds.count("jpeg") >= 15
    kinds.clear()
    decoded = RunningJob(camera, demo_roster, workers=1, sample_fps=2.0, keyframes=False).start().finish()
    assert kinds == ["jpeg"] * 40
    assert statuses(passed) == statuses(decoded) == demo_material.expected
    assert all(abs(a.frames_seen - b.frames_seen) <= 1 for a, b in zip(passed.students, decoded.students))
