"""The requester's view of its peers: their states and what it records about each.

A peer is a machine, not a connection: one student may open several connections (from one
laptop, or one process pretending to be two). Everything that judges a peer (checks it passed,
failures, bans, whether two answers confirm each other) is keyed by `machine_key`, so a ban
covers every connection of that machine and two connections of it never vouch for each other.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

LOOPBACK_ADDRESSES = ("", "?", "::1")
TRUSTED_MACHINE = ("local", "this computer")


class PeerState(str, Enum):
    """JOINED --(a batch)--> WORKING --BYE / silence / a proven lie--> LEFT / LOST / QUARANTINED;
    DONE when the job ends with the peer still connected. The value travels in snapshots."""

    JOINED = "joined"
    WORKING = "working"
    LEFT = "left"
    LOST = "lost"
    QUARANTINED = "quarantined"
    DONE = "done"

    @property
    def active(self) -> bool:
        return self in (PeerState.JOINED, PeerState.WORKING)

    @property
    def gone(self) -> bool:
        return self in (PeerState.LEFT, PeerState.LOST, PeerState.QUARANTINED)


def machine_key(name: str, address: str) -> tuple[str, str]:
    """Which machine a connection belongs to: its address on a LAN; on loopback (one machine,
    many processes: tests run every peer there, and our own local worker) the process's name."""
    if address.startswith("127.") or address in LOOPBACK_ADDRESSES:
        return ("name", name)
    return ("addr", address)


@dataclass
class PeerRecord:
    """What the teacher sees in the peer table, and what the requester knows of one connection."""

    name: str
    address: str
    cores: int
    state: PeerState = PeerState.JOINED
    trusted: bool = False  # the teacher's own local worker (it connected with the key the job made for it)
    frames: int = 0
    batches: int = 0
    credit: int = 0
    busy_s: float = 0.0
    joined_at: float = field(default_factory=time.monotonic)
    last_heard: float = field(default_factory=time.monotonic)
    bad_messages: int = 0
    why: str = ""  # why it was quarantined, for the report and the peer table

    @property
    def active(self) -> bool:
        return self.state.active

    @property
    def machine(self) -> tuple[str, str]:
        # The teacher's own worker is a machine of its own: a peer naming itself alike shares nothing with it.
        return TRUSTED_MACHINE if self.trusted else machine_key(self.name, self.address)

    def frames_per_s(self, now: float) -> float:
        elapsed = now - self.joined_at
        return self.frames / elapsed if elapsed > 0 else 0.0

    def snapshot(self, peer_id: str, now: float) -> dict:
        """A plain copy for other threads (the GUI): never hand out the live record."""
        return {
            "id": peer_id,
            "name": self.name,
            "address": self.address,
            "cores": self.cores,
            "state": self.state.value,
            "frames": self.frames,
            "frames_per_s": round(self.frames_per_s(now), 2),
            "last_heard_s": round(now - self.last_heard, 1),
            "bad_messages": self.bad_messages,
            "why": self.why,
        }


@dataclass
class MachineRecord:
    """What the requester counts per machine (all its connections together)."""

    results: int = 0  # batches answered
    errors: int = 0  # ERROR answers
    banned: bool = False
    why: str = ""
