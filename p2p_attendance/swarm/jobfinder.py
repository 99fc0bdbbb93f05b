"""Finding jobs on the LAN: the glue between discovery (mDNS adverts) and a volunteer.

A requester advertises its admission port, job id, class and CurveZMQ public key. A sharing
volunteer that holds a join code (or sees a job the teacher opened to the whole network) picks
such a job, asks its user when told to (confirm_job: the GUI shows the teacher's name, the class
and the key fingerprint), checks that one of its advertised addresses answers (multi-homed
laptops advertise only their LAN address, but a stale VPN address must not stall us), and hands
the volunteer a JobTarget. A requester key that refused us (wrong code, or a fake requester that
could not prove it knows the code) is not tried again by this finder, until the user corrects
the code.
"""
from __future__ import annotations

import logging
import socket
import threading
import time

from p2p_attendance.errors import KeyError_
from p2p_attendance.peertext import displayable
from p2p_attendance.swarm.protocol import PROTOCOL_VERSION
from p2p_attendance.swarm.security import parse_server_key
from p2p_attendance.swarm.volunteer import JobTarget, Outcome

log = logging.getLogger(__name__)


def reachable(endpoint: str, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to `endpoint` (tcp://host:port) opens within `timeout` seconds."""
    host, _, port = endpoint[len("tcp://") :].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class JobFinder:
    """callable(stop) -> JobTarget | None, for SharingService.find_jobs."""

    def __init__(self, directory, join_code: str = "", wait_s: float = 2.0, hint_after_s: float = 10.0, on_hint=None, confirm_job=None):
        self.directory = directory
        self.join_code = join_code
        self.wait_s = wait_s
        self.hint_after_s = hint_after_s
        self.on_hint = on_hint or (lambda text: None)
        self.done_jobs: set[str] = set()  # finished, or rejected us: never again
        self.refused_keys: set[bytes] = set()  # requester keys that did not admit us (z85)
        self.refused_jobs: set[str] = set()  # of done_jobs, those that refused us: a corrected code may try them again
        self.agreed_jobs: set[str] = set()  # the user said yes once: not asked again when retried
        # callable(PeerInfo) -> True / False / None (no answer): may we join this job?
        # (the GUI asks the student; the CLI prints the key fingerprint and joins)
        self.confirm_job = confirm_job or (lambda peer: True)
        self.incompatible_jobs: set[str] = set()  # adverts of another protocol version, told once each
        self._searching_since: float | None = None
        self._hinted = False

    def candidates(self):
        for peer in sorted(self.directory.snapshot(), key=lambda p: p.name):
            if peer.state != "requesting" or not (peer.port and peer.job_id and peer.server_key):
                continue
            if peer.job_id in self.done_jobs or not (peer.open_job or self.join_code):
                continue
            if peer.protocol_version != PROTOCOL_VERSION:  # joining would only end in a refusal
                self._tell_incompatible(peer)
                continue
            yield peer

    def _tell_incompatible(self, peer) -> None:
        if peer.job_id in self.incompatible_jobs or len(self.incompatible_jobs) >= 1024:  # once per job; bounded
            return
        self.incompatible_jobs.add(peer.job_id)
        text = (f"Not joining the job of {displayable(peer.name, 64)}: the teacher's copy of the app speaks protocol "
                f"{peer.protocol_version}, this one {PROTOCOL_VERSION}. Install the teacher's version.")
        log.warning("%s", text)
        self.on_hint(text)

    def __call__(self, stop: threading.Event) -> JobTarget | None:
        if self._searching_since is None:
            self._searching_since = time.monotonic()
        deadline = time.monotonic() + self.wait_s
        while not stop.is_set():
            for peer in self.candidates():
                try:
                    key = parse_server_key(peer.server_key)
                except KeyError_:
                    continue
                if key in self.refused_keys:
                    continue
                for endpoint in peer.endpoints():
                    if reachable(endpoint):
                        join = True if peer.job_id in self.agreed_jobs else self.confirm_job(peer)
                        if join is False:
                            self.done_jobs.add(peer.job_id)  # declined: do not ask again
                        if not join:  # declined, or no answer (asked again on a later search)
                            break
                        self._searching_since, self._hinted = None, False
                        self.agreed_jobs.add(peer.job_id)
                        code = "" if peer.open_job else self.join_code
                        return JobTarget(endpoint, key, code, job_id=peer.job_id, open_job=peer.open_job)
            if time.monotonic() >= deadline:
                break
            stop.wait(0.2)
        if not self._hinted and time.monotonic() - self._searching_since > self.hint_after_s:
            self._hinted = True
            seen = len(self.directory.snapshot())
            self.on_hint(
                "No job found on this network yet"
                + (" (mDNS sees no other copy of the app: multicast may be blocked here; ask the teacher for the --connect line)"
                   if seen == 0 else f" ({seen} other copies seen, none taking attendance)")
            )
        return None

    def job_ended(self, target: JobTarget, outcome: Outcome) -> None:
        if target.job_id and outcome in (Outcome.FINISHED, Outcome.REJECTED):
            self.done_jobs.add(target.job_id)
        if outcome is Outcome.REJECTED:
            self.refused_keys.add(target.server_key)
            if target.job_id:
                self.refused_jobs.add(target.job_id)

    def code_changed(self, code: str) -> None:
        """The user corrected the join code (from another thread): jobs and keys that refused the
        old one get one more try with it."""
        self.join_code = code
        self.done_jobs = self.done_jobs - self.refused_jobs  # new sets: the sharing thread reads them meanwhile
        self.refused_jobs = set()
        self.refused_keys = set()


class LanJobFinder(JobFinder):
    """A JobFinder that opens its own PeerDirectory on first use, on the calling thread (the
    share thread, not the GUI's: starting zeroconf blocks briefly), and closes it after."""

    def __init__(self, interfaces=None, join_code: str = "", **kwargs):
        super().__init__(None, join_code, **kwargs)
        self.interfaces = interfaces

    def __call__(self, stop: threading.Event) -> JobTarget | None:
        if self.directory is None:
            from p2p_attendance.discovery import PeerDirectory

            self.directory = PeerDirectory(self.interfaces)
        return super().__call__(stop)

    def close(self) -> None:
        if self.directory is not None:
            self.directory.close()
            self.directory = None
