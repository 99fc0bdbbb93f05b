"""A safe guest on students' laptops, and a requester that survives hostile input and bad videos."""
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import zmq
from conftest import CODE, RunningJob, statuses

from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.security import client_socket_options, split_connect
from p2p_attendance.swarm.sharing import BatteryGuard
from p2p_attendance.swarm.volunteer import Volunteer

APP = [sys.executable, "-m", "p2p_attendance"]


def regular_files(root):
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                found.append(path)
    return found


def test_volunteer_writes_nothing_to_disk_and_keeps_to_its_cores(demo_material, demo_roster, tmp_path):
    """HOME, XDG dirs, TMPDIR and the working directory of a volunteer are watched during a job."""
    sandbox = Path(tempfile.mkdtemp(prefix="laptop-", dir="/tmp"))  # short: it holds the worker pool's socket
    for sub in ("home", "tmp", "cwd", "data", "config", "state", "cache"):
        (sandbox / sub).mkdir(parents=True)
    env = dict(os.environ, HOME=str(sandbox / "home"), TMPDIR=str(sandbox / "tmp"), XDG_DATA_HOME=str(sandbox / "data"),
               XDG_CONFIG_HOME=str(sandbox / "config"), XDG_STATE_HOME=str(sandbox / "state"), XDG_CACHE_HOME=str(sandbox / "cache"))
    job = RunningJob(demo_material.video, demo_roster, sample_fps=6.0).start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    volunteer = subprocess.Popen([*APP, "volunteer", "--connect", job.line, "--join-code", CODE, "--cores", "1",
                                  "--single-job", "--no-discovery", "--quiet"], cwd=sandbox / "cwd", env=env)
    try:
        report = job.finish()
        assert volunteer.wait(30) == 0
    finally:
        job.close()
        if volunteer.poll() is None:
            volunteer.kill()
    wall = time.monotonic() - started
    leftovers = regular_files(sandbox)
    shutil.rmtree(sandbox, ignore_errors=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert statuses(report) == demo_material.expected
    assert leftovers == []  # sockets of the worker pool may come and go; files may not
    # One core offered: the volunteer, its forkserver and its worker together stay near one core.
    assert cpu / wall < 1.25, f"used {cpu / wall:.2f} cores"


def test_battery_pause_holds_back_new_work(monkeypatch):
    import psutil

    class Battery:
        power_plugged = False

    monkeypatch.setattr(psutil, "sensors_battery", lambda: Battery())
    guard = BatteryGuard(check_every_s=0)
    assert guard() is True
    Battery.power_plugged = True
    assert guard() is False
    monkeypatch.setattr(psutil, "sensors_battery", lambda: None)  # a desktop: no battery
    assert guard() is False
    Battery.power_plugged = None  # psutil cannot tell: plugged in, as the Share screen says (host.on_battery)
    monkeypatch.setattr(psutil, "sensors_battery", lambda: Battery())
    assert guard() is False
    volunteer = Volunteer(cores=1, paused=lambda: True)
    volunteer.status.state = "working"
    assert volunteer._is_paused() and volunteer.status.state == "paused"


def test_ten_thousand_hostile_messages_authenticated_and_not(demo_material, demo_roster):
    job = RunningJob(demo_material.video, demo_roster, sample_fps=8.0).start()
    honest = job.volunteer("honest")
    context = zmq.Context()
    insider = job.admitted_dealer(context)
    insider.setsockopt(zmq.SNDHWM, 0)
    # The outsider knows the data port but never proved the code: ZAP keeps it off that socket.
    endpoint, key = split_connect(job.line)
    outsider = context.socket(zmq.DEALER)
    client_socket_options(outsider, key)
    outsider.setsockopt(zmq.LINGER, 0)
    outsider.setsockopt(zmq.SNDHWM, 0)
    outsider.connect(f"tcp://127.0.0.1:{job.job.requester.data_port}")
    insider.send_multipart(proto.encode("HELLO", name="insider", cores=1, app_version="0.1.0"))
    assert insider.poll(10000)
    rng = np.random.default_rng(11)
    templates = [
        b'{"v":1,"type":"RESULT","batch_id":%d,"frames":[{"index":%d,"time_s":0,"faces":[]}]}',
        b'{"v":1,"type":"READY","credit":%d}{"%d',
        b'{"v":1,"type":"ERROR","batch_id":%d,"message":"x%d"}',
        b'{"v":1,"type":"HELLO","name":"n%d","cores":%d,"app_version":"1"}',
    ]
    sent = 0
    try:
        for n in range(10_000):
            sock = insider if n % 2 else outsider
            kind = rng.integers(4)
            if kind == 0:
                frames = [rng.bytes(int(rng.integers(0, 300)))]
            elif kind == 1:
                frames = [templates[rng.integers(len(templates))] % (rng.integers(0, 99), rng.integers(0, 99)), rng.bytes(int(rng.integers(0, 600)))]
            elif kind == 2:
                frames = [b'{"v":1,"type":"HEARTBEAT"}'] * int(rng.integers(1, 40))  # too many parts
            else:
                frames = [rng.bytes(8)] * 3
            try:
                sock.send_multipart(frames, zmq.NOBLOCK if sock is outsider else 0)
            except zmq.Again:
                pass  # the outsider has no connection to queue on: ZAP closed it
            sent += 1
            while insider.poll(0):
                insider.recv_multipart()
        report = job.finish()
    finally:
        insider.close()
        outsider.close()
        context.term()
        job.close()
    requester = job.job.requester
    assert sent == 10_000
    assert requester.dropped_messages >= 4_500  # the insider's: the outsider's never got in
    assert report.job.frames_processed == report.job.frames_total
    assert statuses(report) == demo_material.expected
    assert honest.wait(30) == 0
    print(f"fuzz: {sent} messages sent, {requester.dropped_messages} dropped, job finished with {report.job.frames_processed} frames")


def test_a_video_damaged_part_way_gives_a_report_for_what_was_read(demo_material, tmp_path, demo_roster):
    source = cv2.VideoCapture(str(demo_material.video))
    damaged = tmp_path / "lecture.avi"
    writer = cv2.VideoWriter(str(damaged), cv2.VideoWriter_fourcc(*"MJPG"), 10, (1280, 720))
    while True:
        ok, frame = source.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    data = damaged.read_bytes()
    damaged.write_bytes(data[: int(len(data) * 0.6)])  # the recording stopped mid-lecture
    out = subprocess.run([*APP, "run", str(damaged), "--class", "Demo class", "--workers", "1", "--no-discovery",
                          "--json", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 3, out.stderr  # done, with a warning
    assert "could not be read past" in out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert 5 <= report["job"]["frames_processed"] < 20
    assert report["job"]["warnings"] and "could not be read past" in report["job"]["warnings"][0]
    grace = next(s for s in report["students"] if s["id"] == "grace_hopper")
    assert grace["frames_seen"] > 0
