"""Which batch goes to which peer: a pure state machine, no sockets (the clock is passed in).

Pull-based: a batch is handed out only when a peer has asked (credit). Near the end of a job,
when nothing is pending, an idle peer gets a second copy of the oldest batch still out on
another peer; the first result wins and the late duplicate is dropped, so one slow or dying
laptop cannot hold the whole class hostage, and every frame counts exactly once.

Failures are counted per machine (`machine_of`), not per connection: three connections of one
laptop that fail a batch are one failed attempt, and a check copy never goes back to the
machine whose answer it checks. A check copy is reserved for the peers the requester picked
(`Batch.only_for`), never for whoever happens to ask first.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MAX_COPIES = 2  # a batch runs on at most two peers at once (tail re-issue)
MAX_ATTEMPTS = 3  # a batch that fails on this many different peers is given up (reported missing)


@dataclass
class Batch:
    id: int
    frames: list[dict]  # [{"index": i, "time_s": t, "keyframe": True if its payload is a coded keyframe}]
    payloads: list[bytes]  # one JPEG or coded keyframe per frame
    holders: set = field(default_factory=set)
    failed_on: set = field(default_factory=set)  # machines that could not do it never get it again
    check_of: int | None = None  # for a validation re-run: the id of the batch it re-checks
    lost_with: int = 0  # peers that vanished while holding it: a batch that kills its peers is given up
    assigned_at: dict = field(default_factory=dict)  # peer -> time it got the batch (caller's clock)
    only_for: set | None = None  # the peers the requester picked for it (a check copy), None: anyone
    tokens: list[int] = field(default_factory=list)  # the opaque frame tokens peers see for its frames


class Scheduler:
    def __init__(self, clock=lambda: 0.0, machine_of=lambda peer: peer):
        self.clock = clock  # injected: the scheduler itself reads no clock
        self.machine_of = machine_of  # which machine a peer (connection) is
        self.pending: deque[Batch] = deque()
        self.in_flight: dict[int, Batch] = {}  # insertion order = order first issued
        self.failed: list[Batch] = []
        self.exhausted = False  # no more batches will be added

    def add(self, batch: Batch) -> None:
        self.pending.append(batch)

    def give_up_unassignable(self, live_peers: set) -> None:
        """Batches that every live peer has already failed can never finish: report them missing."""
        if not live_peers:
            return
        live_machines = {self.machine_of(p) for p in live_peers}
        for batch in [b for b in self.pending if live_machines <= b.failed_on]:
            self.pending.remove(batch)
            self._give_up(batch)

    def _give_up(self, batch: Batch) -> None:
        """Peers cannot do it: the caller runs it on its own computer, or reports it missing."""
        self.failed.append(batch)

    def may_take(self, peer, batch: Batch) -> bool:
        return self.machine_of(peer) not in batch.failed_on and (batch.only_for is None or peer in batch.only_for)

    def assign(self, peer) -> Batch | None:
        for position, batch in enumerate(self.pending):
            if not self.may_take(peer, batch):
                continue
            del self.pending[position]
            batch.holders.add(peer)
            batch.assigned_at[peer] = self.clock()
            self.in_flight[batch.id] = batch
            return batch
        if self.exhausted:
            for batch in self.in_flight.values():
                if peer not in batch.holders and self.may_take(peer, batch) and len(batch.holders) < MAX_COPIES and batch.only_for is None:
                    batch.holders.add(peer)
                    batch.assigned_at[peer] = self.clock()
                    return batch
        return None

    def complete(self, peer, batch_id: int) -> Batch | None:
        """The batch if this is its first result from a peer that was given it, else None."""
        batch = self.in_flight.get(batch_id)
        if batch is None or peer not in batch.holders:
            return None
        del self.in_flight[batch_id]  # a late copy's result now finds nothing: dropped
        return batch

    def fail(self, peer, batch_id: int) -> None:
        batch = self.in_flight.get(batch_id)
        if batch is None or peer not in batch.holders:
            return
        batch.holders.discard(peer)
        batch.failed_on.add(self.machine_of(peer))
        if batch.holders:
            return
        del self.in_flight[batch_id]
        if len(batch.failed_on) >= MAX_ATTEMPTS:
            self._give_up(batch)
        else:
            self.pending.appendleft(batch)

    def release(self, peer) -> int:
        """A peer left or vanished: its batches go back to the front of the queue at once."""
        returned = 0
        for batch_id in [b for b, batch in self.in_flight.items() if peer in batch.holders]:
            batch = self.in_flight[batch_id]
            batch.holders.discard(peer)
            batch.lost_with += 1
            if not batch.holders:
                del self.in_flight[batch_id]
                if batch.lost_with >= MAX_ATTEMPTS:
                    self._give_up(batch)
                else:
                    self.pending.appendleft(batch)
                    returned += 1
        return returned

    def outstanding(self, peer) -> int:
        return sum(peer in b.holders for b in self.in_flight.values())

    def overdue(self, now: float, limit_s: float) -> list[tuple[object, int]]:
        """(peer, batch id) pairs held longer than limit_s: a stalled peer, or one that stalls on purpose."""
        return [(peer, b.id) for b in self.in_flight.values() for peer in b.holders if now - b.assigned_at.get(peer, now) > limit_s]

    @property
    def done(self) -> bool:
        return self.exhausted and not self.pending and not self.in_flight
