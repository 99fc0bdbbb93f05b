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

from p2p_attendance.swarm.volunteer import JobTarget, Outcome, Volunteer, VolunteerStatus

log = logging.getLogger(__name__)


@dataclass
class SharingService:
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
    outcomes: list = field(default_factory=list)
    last_message: str = ""

    def run(self, stop: threading.Event) -> Outcome | None:
        volunteer = Volunteer(cores=self.cores, name=self.name, on_status=self.on_status, paused=self.paused, client_keypair=self.client_keypair)
        self._status(VolunteerStatus(state="idle", message="looking for a job" if self.target is None else ""))
        outcome = None
        try:
            while not stop.is_set():
                target = self.target or (self.find_jobs(stop) if self.find_jobs else None)
                if target is None:
                    stop.wait(self.retry_wait_s)
                    continue
                if not target.join_code and not target.open_job:
                    target = dataclasses.replace(target, join_code=self.join_code)
                outcome = volunteer.run_job(target, stop)
                self.outcomes.append(outcome)
                self.last_message = volunteer.status.message
                if hasattr(self.find_jobs, "job_ended"):
                    self.find_jobs.job_ended(target, outcome)
                if self.single_job or outcome is Outcome.STOPPED:
                    break
                if outcome is Outcome.REJECTED and self.target is not None:
                    break  # a fixed requester said no (wrong code): asking again will not help
                self._status(VolunteerStatus(state="idle", message=f"last job {outcome.value}; waiting for the next"))
                stop.wait(self.retry_wait_s)
        finally:
            volunteer.close()
            self._status(VolunteerStatus(state="idle", message="not sharing"))
        return outcome

    def _status(self, status: VolunteerStatus) -> None:
        if callable(self.on_status):
            self.on_status(status)


class BatteryGuard:
    """paused() for "only when plugged in": true while running on battery (checked every 15 s).
    Computers without a battery, or where psutil cannot tell, are always plugged in."""

    def __init__(self, check_every_s: float = 15.0):
        self.check_every_s = check_every_s
        self._checked_at = -1e9
        self._on_battery = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at >= self.check_every_s:
            self._checked_at = now
            try:
                import psutil

                battery = psutil.sensors_battery()
                self._on_battery = battery is not None and not battery.power_plugged
            except Exception:
                self._on_battery = False
        return self._on_battery
