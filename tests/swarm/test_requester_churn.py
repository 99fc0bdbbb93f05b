"""Churn against the requester: connections that are admitted with the code, join and vanish (issue 13, item 9)."""
import os
import threading
import time

import numpy as np
import pytest
import zmq
from conftest import admitted_dealer, tiny_video

from p2p_attendance.compute.batch import JobParams
from p2p_attendance.compute.engine import DetectionSettings
from p2p_attendance.compute.video import probe_video
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.requester import MAX_DEPARTED_IDLE_PEERS, JobSpec, Requester

CODE = "424242"
CONNECTIONS = 2000


def _thread_cpu_s(thread: threading.Thread) -> float:
    fields = open(f"/proc/self/task/{thread.native_id}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="per-thread CPU is read from /proc")
def test_join_and_vanish_churn_leaves_no_records_and_no_idle_cpu(tmp_path):
    params = JobParams([], np.zeros((0, 128), np.float32), 0.6, DetectionSettings())
    spec = JobSpec(probe_video(tiny_video(tmp_path / "tiny.mp4")), 1.0, params, join_code=CODE)
    peer_events = []
    requester = Requester(spec, listen="tcp://127.0.0.1:0", on_event=lambda kind, payload: kind == "peers" and peer_events.append(len(payload)))
    stop = threading.Event()
    thread = threading.Thread(target=requester.run, args=(stop,), daemon=True)
    thread.start()
    context = zmq.Context()
    welcomed = attempts = 0
    started = time.monotonic()
    try:
        for _ in range(CONNECTIONS // 50):  # 50 at a time; each is admitted with the code, joins, then vanishes without BYE
            sockets = []
            for _ in range(50):
                sock = admitted_dealer(requester.connect_line("127.0.0.1"), context, CODE)
                # A name each: on loopback the name is the machine, and a machine may hold only 3
                # connections (MAX_CONNECTIONS_PER_MACHINE); on a LAN, as many addresses.
                sock.send_multipart(proto.encode("HELLO", name=f"churn-{attempts}", cores=1, app_version="0.1.0"))
                attempts += 1
                sockets.append(sock)
            for sock in sockets:
                if sock.poll(10000) and proto.decode(sock.recv_multipart()).type == "WELCOME":
                    welcomed += 1
                sock.close()
            assert time.monotonic() - started < 300, "churn took too long"
        churn_s = time.monotonic() - started
        deadline = time.monotonic() + 30  # every vanished peer is declared lost after LIVENESS heartbeats
        while any(p.active for p in list(requester.peers.values())) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2 * proto.HEARTBEAT_S)
        cpu_before = _thread_cpu_s(thread)
        idle_s = 5.0
        time.sleep(idle_s)
        idle_cpu = (_thread_cpu_s(thread) - cpu_before) / idle_s
        records = len(requester.peers)
        machines = len(requester.machines)  # each connection named its own machine
        print(f"\n{welcomed} of {CONNECTIONS} joined and vanished in {churn_s:.1f} s: {records} peer records kept, "
              f"last peer table {peer_events[-1]} rows, requester thread idle CPU {100 * idle_cpu:.1f} %")
    finally:
        stop.set()
        thread.join(10)
        context.term()
    assert welcomed >= CONNECTIONS * 0.95
    assert records <= MAX_DEPARTED_IDLE_PEERS
    assert machines <= MAX_DEPARTED_IDLE_PEERS, f"{machines} machine records kept"
    assert peer_events[-1] <= MAX_DEPARTED_IDLE_PEERS
