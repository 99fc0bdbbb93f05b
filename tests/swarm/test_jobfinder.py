"""A job found on the network that refused the student's code is tried again once the student
corrects the code, without asking "join this job?" a second time (issue 16, item 2)."""
import socket
import threading

import zmq

from p2p_attendance.swarm.jobfinder import JobFinder
from p2p_attendance.swarm.protocol import PROTOCOL_VERSION
from p2p_attendance.swarm.volunteer import Outcome


class _Directory:
    def __init__(self, peers):
        self.peers = peers

    def snapshot(self):
        return self.peers


def test_a_corrected_code_retries_the_job_that_refused_the_old_one_without_asking_again():
    listener = socket.create_server(("127.0.0.1", 0))

    class Peer:
        state, name, job_id, open_job, port, class_name = "requesting", "teacher", "job-1", False, 1, "Physics 1"
        protocol_version = PROTOCOL_VERSION
        server_key = zmq.curve_keypair()[0].decode()

        def endpoints(self):
            return [f"tcp://127.0.0.1:{listener.getsockname()[1]}"]

    asked = []
    try:
        finder = JobFinder(_Directory([Peer()]), "111111", wait_s=0.3, confirm_job=lambda peer: asked.append(peer.job_id) or True)
        stop = threading.Event()
        target = finder(stop)
        assert target is not None and target.join_code == "111111" and asked == ["job-1"]
        finder.job_ended(target, Outcome.REJECTED)
        assert finder(stop) is None  # the old code is not tried again
        finder.code_changed("222222")
        again = finder(stop)
        assert again is not None and again.join_code == "222222"
        assert asked == ["job-1"]  # the student said yes already
        finder.job_ended(again, Outcome.FINISHED)
        finder.code_changed("333333")
        assert finder(stop) is None  # a finished job stays finished
    finally:
        listener.close()


def test_an_advert_of_another_protocol_version_is_ignored_and_said_once(caplog):
    """A job advertised by an app of another protocol version would only refuse us: the finder
    does not ask to join it nor connect, and says why once (status line and log)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def advert(job_id, protocol_version):
        class Peer:
            state, name, open_job, port, class_name = "requesting", "teacher", False, 1, "Physics 1"
            server_key = zmq.curve_keypair()[0].decode()

            def endpoints(self):
                return [f"tcp://127.0.0.1:{listener.getsockname()[1]}"]

        peer = Peer()
        peer.job_id, peer.protocol_version = job_id, protocol_version
        return peer

    asked, hints = [], []
    try:
        directory = _Directory([advert("job-new", PROTOCOL_VERSION + 1)])
        finder = JobFinder(directory, "111111", wait_s=0.3, on_hint=hints.append, confirm_job=lambda peer: asked.append(peer.job_id) or True)
        stop = threading.Event()
        with caplog.at_level("WARNING", logger="p2p_attendance.swarm.jobfinder"):
            assert finder(stop) is None and finder(stop) is None
        assert asked == []
        assert len(hints) == 1 and f"speaks protocol {PROTOCOL_VERSION + 1}, this one {PROTOCOL_VERSION}" in hints[0]
        assert [r.getMessage() for r in caplog.records] == hints
        directory.peers.append(advert("job-same", PROTOCOL_VERSION))
        target = finder(stop)
        assert target is not None and target.job_id == "job-same" and asked == ["job-same"]
    finally:
        listener.close()
