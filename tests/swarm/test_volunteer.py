"""The volunteer's pace and patience (swarm/volunteer.py): it joins once its workers can take work,
a batch it holds in reserve starts the moment a worker frees, not a round trip to the requester
later, and a requester whose batches are slow to arrive is not taken for a dead one.

A real volunteer (admission, CurveZMQ, its loop) on a thread here, with the simulation's stand-in
workers (they sleep instead of recognising faces), against a requester this test plays itself."""
import functools
import threading
import time

import numpy as np
import pytest
import zmq
from conftest import AdmissionDoor

from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm import volunteer as volunteer_module
from p2p_attendance.swarm.security import new_keypair, server_socket_options
from p2p_attendance.swarm.volunteer import JobTarget, Volunteer
from p2p_attendance.swarm.workers import WorkerPool
from p2p_attendance.tools.simulate_volunteer import SLEEP_ENV, stand_in_main

CODE = "424242"


class SilentRequester:
    """A requester that welcomes one volunteer, answers its first READY with that many batches,
    then only listens: nothing it sends wakes the volunteer after that."""

    def __init__(self, hold_s: float = 0.0):
        self.hold_s = hold_s  # how long its batches take to arrive after READY: a saturated link
        public, secret = new_keypair()
        self.public = public
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.ROUTER)
        server_socket_options(self.sock, public, secret)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.door = AdmissionDoor(CODE, public, self.sock.bind_to_random_port("tcp://127.0.0.1"))
        self.identity = None
        self.on_hello = lambda: None
        self.results: list[tuple[float, dict]] = []  # (arrival time, RESULT's fields)

    def target(self) -> JobTarget:
        return JobTarget(f"tcp://127.0.0.1:{self.door.port}", self.public, CODE)

    def serve(self, results: int, timeout_s: float) -> None:
        roster = np.random.default_rng(1).normal(0, 0.09, 128).astype(np.float32).tobytes()
        deadline = time.monotonic() + timeout_s
        batches = 0
        while time.monotonic() < deadline and len(self.results) < results:
            if not self.sock.poll(20):
                continue
            identity, *frames = self.sock.recv_multipart()
            msg = proto.decode(frames)
            if msg.type == "HELLO":
                self.identity = identity
                self.on_hello()
                self.send("WELCOME", [roster], job_id="pace", params={"tolerance": 0.6, "upsample": 0, "min_score": 0.0},
                          roster_ids=["s0"], heartbeat_s=1.0)
            elif msg.type == "READY" and batches == 0:
                time.sleep(self.hold_s)  # nothing at all reaches the volunteer meanwhile, heartbeats included
                for batch_id in range(msg["credit"]):  # all the credit at once; then silence
                    self.send("BATCH", [b"frame %d" % batch_id], batch_id=batch_id, frames=[{"token": batch_id}])
                batches = msg["credit"]
            elif msg.type == "RESULT":
                self.results.append((time.monotonic(), msg))

    def send(self, msg_type, parts=None, **fields):
        self.sock.send_multipart([self.identity, *proto.encode(msg_type, parts, **fields)])

    def close(self):
        if self.identity is not None:
            self.send("BYE", reason="done")
        self.door.close()
        self.sock.close()
        self.context.term()


@pytest.fixture
def stand_in_volunteer(monkeypatch):
    """A one-core volunteer (one batch at work, one held in reserve) whose worker sleeps 100 ms a frame."""
    monkeypatch.setenv(SLEEP_ENV, "100")
    monkeypatch.setattr(volunteer_module, "WorkerPool", functools.partial(WorkerPool, worker_main=stand_in_main))
    volunteer = Volunteer(cores=1, prefetch=1, name="pace")
    yield volunteer
    volunteer.close()


def _run(volunteer: Volunteer, requester: SilentRequester, results: int) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=volunteer.run_job, args=(requester.target(), stop), daemon=True)
    thread.start()
    try:
        requester.serve(results, timeout_s=60)
    finally:
        stop.set()
        thread.join(10)
        requester.close()


@pytest.mark.slow
def test_a_batch_held_in_reserve_starts_when_the_worker_frees_not_when_the_requester_next_speaks(stand_in_volunteer, monkeypatch):
    # The loop's own timer is the only thing left to wake it once the requester is silent (its
    # answer to READY is a round trip away: milliseconds on loopback, tens on Wi-Fi, each batch).
    monkeypatch.setattr(volunteer_module, "IDLE_WAKE_S", 5.0)
    requester = SilentRequester()
    _run(stand_in_volunteer, requester, results=2)
    assert len(requester.results) == 2, "the volunteer did not answer both batches"
    (first_at, _), (second_at, second) = requester.results
    work_s = float(second["busy_s"])  # the worker's own time on the second batch
    print(f"\nsecond batch answered {1000 * (second_at - first_at):.0f} ms after the first; the worker spent {1000 * work_s:.0f} ms on it")
    assert second_at - first_at < work_s + 0.5


@pytest.mark.slow
def test_a_volunteer_joins_once_its_workers_are_ready(stand_in_volunteer):
    requester = SilentRequester()
    ready_at_hello = []
    requester.on_hello = lambda: ready_at_hello.append([slot.ready for slot in stand_in_volunteer._pool.slots])
    _run(stand_in_volunteer, requester, results=1)
    assert ready_at_hello == [[True]]  # no batch waits on a worker that is still starting
    assert len(requester.results) == 1


@pytest.mark.slow
def test_a_volunteer_waits_for_batches_stuck_on_a_saturated_link_instead_of_rejoining(stand_in_volunteer):
    # Behind a saturated link the requester's heartbeats queue behind the batches ahead of them:
    # nothing whole arrives for longer than LIVENESS heartbeats. Rejoining then threw away the
    # batches on their way and sent them again (42 rejoins in a simulated N = 32 job at 100 Mbit/s).
    requester = SilentRequester(hold_s=proto.HEARTBEAT_S * proto.LIVENESS + 1.5)
    hellos = []
    requester.on_hello = lambda: hellos.append(time.monotonic())
    _run(stand_in_volunteer, requester, results=2)
    assert len(hellos) == 1, "the volunteer left and joined again while its batches were on their way"
    assert len(requester.results) == 2


@pytest.mark.slow
def test_a_volunteer_leaves_at_once_when_the_requesters_connection_closes(stand_in_volunteer):
    # Patience with silence must not keep it on a requester that is gone: the connection's end says so.
    requester = SilentRequester()
    stop = threading.Event()
    outcome = []
    stand_in_volunteer.max_retries = 0
    thread = threading.Thread(target=lambda: outcome.append(stand_in_volunteer.run_job(requester.target(), stop)), daemon=True)
    thread.start()
    try:
        requester.serve(results=2, timeout_s=60)
        assert len(requester.results) == 2
        closed_at = time.monotonic()
        requester.door.close()
        requester.sock.close()  # no BYE: the requester's process is gone
        thread.join(proto.HEARTBEAT_S * proto.LIVENESS + 5)
        assert not thread.is_alive(), "the volunteer kept waiting on a closed connection"
        assert outcome == [volunteer_module.Outcome.LOST]
        print(f"\nleft {time.monotonic() - closed_at:.1f} s after the requester's socket closed")
    finally:
        stop.set()
        thread.join(10)
        requester.context.term()


@pytest.mark.slow
def test_a_bye_that_arrives_with_the_connections_end_still_finishes_the_job(stand_in_volunteer):
    # The requester says BYE, waits 0.1 s and closes (requester.close): a volunteer busy meanwhile
    # finds both the BYE and the connection's end waiting. Taking the end first, it reported the
    # requester lost, retried admission for 15 s and never recorded the job as finished.
    requester = SilentRequester()
    stop = threading.Event()
    outcome = []

    def busy_when_done(status):  # the volunteer's own thread, elsewhere while BYE and the end arrive
        if status.frames_done >= 2:
            time.sleep(1.0)

    stand_in_volunteer.on_status = busy_when_done
    thread = threading.Thread(target=lambda: outcome.append(stand_in_volunteer.run_job(requester.target(), stop)), daemon=True)
    thread.start()
    try:
        requester.serve(results=2, timeout_s=60)
        assert len(requester.results) == 2
        requester.send("BYE", reason="job finished")
        time.sleep(0.1)
        requester.door.close()
        requester.sock.close(linger=0)
        thread.join(15)
        assert outcome == [volunteer_module.Outcome.FINISHED]
    finally:
        stop.set()
        thread.join(10)
        requester.context.term()


def test_a_worker_searches_at_the_seats_its_batch_came_with():
    from p2p_attendance.compute.batch import BatchOutput
    from p2p_attendance.swarm.workers import BatchDone, RunBatch, StopWorker, serve

    class Recording:
        seats = None

        def process(self, frames, payloads, codec=None, seats=()):
            self.seats = seats
            return BatchOutput([[]], b"", [], 0.0)

    class Conn:  # the worker's end of its pipe, in memory
        def __init__(self, incoming):
            self.incoming, self.sent = list(incoming), []

        def recv(self):
            return self.incoming.pop(0)

        def send(self, message):
            self.sent.append(message)

    conn = Conn([RunBatch(("job", 1), [{"token": 0}], [b"jpeg"], None, ((10, 20, 50, 60),)), StopWorker()])
    processor = Recording()
    serve(conn, processor, engine=None)  # answers what it is given, then stops
    assert isinstance(conn.sent[-1], BatchDone) and processor.seats == ((10, 20, 50, 60),)
