"""Result validation catches a volunteer patched to lie, and voids all of its work."""
import threading
import time

import pytest
import zmq

from p2p_attendance.compute.batch import BatchProcessor, JobParams
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.security import client_socket_options, split_connect
from test_swarm import CODE, RunningJob, demo_roster, statuses  # noqa: F401  (fixture)


class LyingVolunteer(threading.Thread):
    """A real volunteer's computation, patched to mark an absent friend present."""

    def __init__(self, line, friend):
        super().__init__(daemon=True)
        self.endpoint, self.key = split_connect(line)
        self.friend = friend
        self.stop = threading.Event()
        self.lies = 0
        self.told_bye = None

    def run(self):
        context = zmq.Context()
        sock = context.socket(zmq.DEALER)
        client_socket_options(sock, self.key)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        send = lambda t, parts=None, **f: sock.send_multipart(proto.encode(t, parts, **f))  # noqa: E731
        send("HELLO", name="liar", cores=1, app_version="0.1.0", join_code=CODE)
        processor = BatchProcessor()
        last_beat = time.monotonic()
        deadline = time.monotonic() + 240
        while not self.stop.is_set() and time.monotonic() < deadline:
            if time.monotonic() - last_beat > 0.5:
                send("HEARTBEAT")
                last_beat = time.monotonic()
            if not sock.poll(50):
                continue
            msg = proto.decode(sock.recv_multipart())
            if msg.type == "WELCOME":
                processor.start_job(JobParams.from_wire(msg["params"], msg["roster_ids"], msg.parts[0]))
                send("READY", credit=2)
            elif msg.type == "BATCH":
                out = processor.process(msg["frames"], *proto.batch_frames(msg))
                for frame in out.frames:
                    for face in frame["faces"]:
                        if face["student_id"] is None:  # the stranger becomes the friend
                            face["student_id"], face["distance"] = self.friend, 0.35
                            self.lies += 1
                send("RESULT", [out.encodings, *out.crops], batch_id=msg["batch_id"], frames=out.frames)
                send("READY", credit=1)
            elif msg.type == "BYE":
                self.told_bye = msg.get("reason")
                break
        sock.close()
        context.term()


@pytest.mark.parametrize("share", [0.5])
def test_a_lying_volunteer_is_quarantined_and_its_work_redone(demo_material, demo_roster, share):
    job = RunningJob(demo_material.video, demo_roster, validation_share=share).start()
    try:
        liar = LyingVolunteer(job.line, "ada_lovelace")
        liar.start()
        job.wait(lambda: liar.lies > 0, 120, "the liar to start lying")
        job.volunteer("honest-1")
        job.volunteer("honest-2")
        report = job.finish()
        liar.stop.set()
        liar.join(10)
    finally:
        job.close()
    requester = job.job.requester
    assert requester.validation["quarantined"] == ["liar"]
    assert requester.validation["disagreements"] >= 1
    assert "quarantined" in (liar.told_bye or "")
    assert statuses(report) == demo_material.expected  # the friend is still absent
    assert report.job.frames_processed == report.job.frames_total
    peers = {p.name: p for p in requester.peers.values()}
    assert peers["liar"].state == "quarantined"
    assert all(face.student_id != "ada_lovelace" for result in requester.results.values() for face in result.faces)
    assert any("quarantined" in text for kind, text in job.events if kind == "warning")
