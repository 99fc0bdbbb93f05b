"""A job found on the network that refused the student's code is tried again once the student
corrects the code, without asking "join this job?" a second time (issue 16, item 2)."""
import socket
import threading

import zmq

from p2p_attendance.swarm.jobfinder import JobFinder
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
