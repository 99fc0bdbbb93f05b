"""Share my CPU: a volunteer that serves one job after another until it is stopped.

Jobs come from a fixed --connect line, or (with discovery) from requesters advertising an open
job on the LAN, joined with the code the student typed. Runs on its own thread (headless CLI or
the GUI's share toggle); status reaches the caller through on_status.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field

from p2p_attendance.host import on_battery
from p2p_attendance.peertext import displayable
from p2p_attendance.swarm.volunteer import JobTarget, Outcome, Volunteer, VolunteerStatus

log = logging.getLogger(__name__)


@dataclass
class SharingService:
    """Share my CPU: finds jobs (fixed target or discovery) and volunteers for them in turn."""

    cores: int
    name: str
    join_code: str = ""
    target: JobTarget | None = None  # fixed requester (--connect); None = find jobs by discovery
    find_jobs: object = None  # callable(stop) -> JobTarget | None, e.g. a discovery lookup
    on_status: object = None  # callable(VolunteerStatus)
    single_job: bool = False
    paused: object = None  # callable() -> bool, see Volunteer.paused
    client_keypair: tuple[bytes, bytes] | None = None  # see Volunteer.client_keypair
    retry_wait_s: float = 2.0
    # A fixed requester that refused us: wait for a corrected code (set_join_code, the Share
    # screen) instead of ending (the CLI ends: nobody can type a new code there).
    wait_for_new_code: bool = False
    outcomes: list = field(default_factory=list)
    last_message: str = ""

    def __post_init__(self):
        self._code_changed = threading.Event()

    def set_join_code(self, code: str) -> None:
        """A corrected code, from another thread: the next attempt uses it, and jobs that refused
        the old one may be tried again."""
        self.join_code = code
        if hasattr(self.find_jobs, "code_changed"):
            self.find_jobs.code_changed(code)
        self._code_changed.set()

    def run(self, stop: threading.Event) -> Outcome | None:
        volunteer = Volunteer(
            cores=self.cores, name=self.name, on_status=self.on_status, paused=self.paused, client_keypair=self.client_keypair,
            join_code_now=lambda: self.join_code,
        )
        self._status(VolunteerStatus(state="idle", message="looking for a job" if self.target is None else ""))
        outcome = None
        try:
            while not stop.is_set():
                target = self.target or (self.find_jobs(stop) if self.find_jobs else None)
                if target is None:
                    stop.wait(self.retry_wait_s)
                    continue
                if not target.open_job and self.join_code:
                    target = dataclasses.replace(target, join_code=self.join_code)
                self._code_changed.clear()
                outcome = volunteer.run_job(target, stop)
                self.outcomes.append(outcome)
                self.last_message = volunteer.status.message
                if hasattr(self.find_jobs, "job_ended"):
                    self.find_jobs.job_ended(target, outcome)
                if self.single_job or outcome is Outcome.STOPPED:
                    break
                refusal = volunteer.status.refusal if outcome is Outcome.REJECTED else ""
                if refusal:  # said as it is: the Share screen shows why, with the code editable
                    self._status(VolunteerStatus(state="idle", message=refusal_words(refusal), refusal=refusal))
                if outcome is Outcome.REJECTED and self.target is not None:
                    if not self.wait_for_new_code:
                        break  # a fixed requester said no (wrong code): asking again will not help
                    while not stop.is_set() and not self._code_changed.wait(0.5):
                        pass
                    continue
                if not refusal:
                    self._status(VolunteerStatus(state="idle", message=f"last job {outcome.value}; waiting for the next"))
                stop.wait(self.retry_wait_s)
        finally:
            volunteer.close()
            self._status(VolunteerStatus(state="idle", message="not sharing"))
        return outcome

    def _status(self, status: VolunteerStatus) -> None:
        if callable(self.on_status):
            self.on_status(status)


def refusal_words(reason: str, retry_after_s: float = 0.0) -> str:
    """Why a requester did not let us in, in words a student understands. `reason` is the
    requester's text (shown as plain text, cut short, only when it is not one we know)."""
    if reason.startswith("wrong join code"):
        return ("The teacher's computer did not accept this join code. Check the code on the teacher's screen, "
                "correct it above and press Enter: the next try uses it.")
    if "did not prove it knows the join code" in reason:
        return ("The computer that answered does not know this class's join code: it may not be the teacher's computer, "
                "or the code typed here is wrong. Check the code and the key fingerprint on the teacher's screen.")
    if reason.startswith("too many join attempts"):
        wait = f"about {retry_after_s / 60:.0f} minutes" if retry_after_s >= 90 else f"about {max(1.0, retry_after_s):.0f} seconds"
        return (f"The teacher's computer has refused too many wrong codes and takes no new try for {wait}. "
                "This computer tries again by itself; correct the code above meanwhile if it is wrong.")
    if reason.startswith("quarantined"):
        return ("The teacher's computer stopped using this computer for this job (its results did not match another computer's). "
                "It will be asked again for the next job.")
    if reason.startswith("incompatible app"):
        return f"This computer's copy of the app does not work with the teacher's ({displayable(reason, 200)}). Install the teacher's version."
    if reason.startswith("too many connections"):
        return "The teacher's computer already has too many connections from this computer; close other copies of the app sharing with it."
    return f"The teacher's computer said no: {displayable(reason, 200)}"


class BatteryGuard:
    """paused() for "only when plugged in": true while running on battery (checked every 15 s).
    Computers without a battery, or where psutil cannot tell, are always plugged in (host.on_battery)."""

    def __init__(self, check_every_s: float = 15.0):
        self.check_every_s = check_every_s
        self._checked_at = -1e9
        self._on_battery = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at >= self.check_every_s:
            self._checked_at = now
            self._on_battery = on_battery()
        return self._on_battery
