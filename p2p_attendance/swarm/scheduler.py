"""Which batch goes to which peer: a pure state machine, no sockets (the clock is passed in).

Pull-based: a batch is handed out only when a peer has asked (credit), and no peer holds more
than its measured throughput needs (`allowance`): enough to keep its workers busy across one
round trip, never a hoard that others must wait for at the end of the job.

Each peer's pace (seconds per frame, from assignment to result) is measured from the batches it
finished. Near the end of a job, when nothing is pending, an idle peer gets a second copy of a
batch still out on another peer only when that copy is likely to win: the holder is overdue
against its *own* pace (it stalled, or slowed down), or the holder's own pace says it needs more
than twice as long from now as the idle peer would. Equal peers never get copies: an empty queue
alone is no reason, every copy costs the batch's bytes again. At most max(1, peers / 8) copies
run at once. The first result wins and the late duplicate is dropped, so every frame counts once.

Behind a link slower than the peers (classroom Wi-Fi, many volunteers), anything a peer holds
beyond its first batch only queues on the link: every batch, and the heartbeats behind it on its
connection, waits longer, and TCP starves some connections for seconds. So once the requester has
measured what it delivers (two results back; until then each peer gets a batch per worker), a
peer takes a batch beyond its first only while all the batches out are within what the requester
delivers in `PIPE_TARGET_S`, or in two batches' work where that is longer (`pipe_cap`): about every
peer's allowance where the peers' work is the limit, about a second of the link where the link is.

Failures are counted per machine (`machine_of`), not per connection: three connections of one
laptop that fail a batch are one failed attempt, and a check copy never goes back to the
machine whose answer it checks. A check copy is reserved for the peers the requester picked
(`Batch.only_for`), never for whoever happens to ask first.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

MAX_ATTEMPTS = 3  # a batch that fails on this many different peers is given up (reported missing)
OVERDUE_FACTOR = 2.0  # held longer than this many times the holder's expected time: overdue
OVERDUE_MIN_S = 2.0  # ... and at least this long: jitter on a short batch is not a stall
FASTER_FACTOR = 2.0  # a copy goes to an idle peer that would finish it this many times sooner
PEERS_PER_COPY = 8  # copies in flight at once: at most max(1, peers // this)
PACE_WEIGHT = 0.3  # EWMA weight of the newest batch in a peer's pace
MIN_ALLOWANCE = 2  # a peer may always hold one batch at work and one on its way
HEADROOM = 1.25  # allowance over the measured need: covers jitter, and lets a held-back peer grow
RATE_WINDOW = 32  # completions a peer's throughput is measured over (several rounds of its workers)
PIPE_WINDOW = 64  # completions the requester's own delivery rate is measured over (all peers)
PIPE_TARGET_S = 1.0  # batches out beyond each peer's first: at most this long of what the requester delivers ...
PIPE_WORK_BATCHES = 2  # ... or this many batches' work, where that is longer (a worker's batch and one on its way)
BUSY_WEIGHT = 0.1  # EWMA weight of the newest batch's reported work time


@dataclass
class Batch:
    """A batch of frames with its payloads, and who holds, failed or was picked for it."""

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
    copy_to: object = None  # the peer given a tail copy of it, if any
    # Where faces were seen so far in the job, searched in it (compute/tracking.py): fixed when
    # it is first handed out, so that every computer doing it (a check copy too) gets the same.
    seats: tuple | None = None


@dataclass
class PeerPace:
    """What the scheduler has measured of one peer (all on the caller's clock)."""

    pace_s: float | None = None  # EWMA of seconds per frame, assignment to result
    best_s: float | None = None  # the fastest batch it returned, seconds per frame: its round trip without queueing
    finished: deque = field(default_factory=lambda: deque(maxlen=RATE_WINDOW))  # (time, frames) of its last results
    workers: int = 1  # the cores it said it lends (HELLO, at most MAX_CREDIT): its allowance never goes below

    def rate(self) -> float | None:
        """Frames per second it returned over its last few results."""
        if len(self.finished) < 2:
            return None
        first = self.finished[0][0]
        span = self.finished[-1][0] - first
        frames = sum(n for t, n in self.finished if t > first)  # results that came with the first are not in its span
        return frames / span if span > 0 else None


@dataclass
class SchedulerStats:
    """Counts of tail copies: handed out, won, and lost to the original holder."""

    reissued: int = 0  # tail copies handed out
    copies_won: int = 0  # ... whose result came first
    copies_lost: int = 0  # ... beaten by the original holder (their bytes were spent for nothing)


class Scheduler:
    """Hands pending batches to peers that ask, within each peer's allowance (see the module doc)."""

    def __init__(self, clock=lambda: 0.0, machine_of=lambda peer: peer):
        self._clock = clock  # injected: the scheduler itself reads no clock
        self._machine_of = machine_of  # which machine a peer (connection) is
        self._pending: deque[Batch] = deque()
        self._in_flight: dict[int, Batch] = {}  # insertion order = order first issued
        self._failed: list[Batch] = []
        self._exhausted = False  # no more batches will be added
        self._peers: dict[object, PeerPace] = {}
        self._delivered: deque = deque(maxlen=PIPE_WINDOW)  # times of the last first results, any peer
        self._busy_s: float | None = None  # EWMA of a batch's work time on its peer (what peers report)
        self.stats = SchedulerStats()

    # -- the queue ------------------------------------------------------------------------------
    def add(self, batch: Batch) -> None:
        self._pending.append(batch)

    def add_first(self, batch: Batch) -> None:
        """Ahead of everything pending: work handed back, redone or re-checked."""
        self._pending.appendleft(batch)

    def finish_input(self) -> None:
        """No more batches will be added."""
        self._exhausted = True

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def take_pending(self, which) -> list[Batch]:
        """Remove and return the pending batches for which which(batch) is true."""
        taken = [b for b in self._pending if which(b)]
        for batch in taken:
            self._pending.remove(batch)
        return taken

    def take_failed(self) -> list[Batch]:
        """Batches given up since the last call, oldest first."""
        failed, self._failed = self._failed, []
        return failed

    def held_by(self, peer, batch_id: int) -> Batch | None:
        """The batch, if it is in flight and this peer was given it."""
        batch = self._in_flight.get(batch_id)
        return batch if batch is not None and peer in batch.holders else None

    def give_up_unassignable(self, live_peers: set) -> None:
        """Batches that every live peer has already failed can never finish: report them missing."""
        if not live_peers:
            return
        live_machines = {self._machine_of(p) for p in live_peers}
        for batch in self.take_pending(lambda b: live_machines <= b.failed_on):
            self._give_up(batch)

    def _give_up(self, batch: Batch) -> None:
        """Peers cannot do it: the caller runs it on its own computer, or reports it missing."""
        self._failed.append(batch)

    def may_take(self, peer, batch: Batch) -> bool:
        return self._machine_of(peer) not in batch.failed_on and (batch.only_for is None or peer in batch.only_for)

    # -- pace and allowance -----------------------------------------------------------------------
    def pace(self, peer) -> PeerPace:
        return self._peers.setdefault(peer, PeerPace())

    def set_workers(self, peer, workers: int) -> None:
        """The number of batches this peer works on at once (its cores, from HELLO)."""
        self.pace(peer).workers = max(1, int(workers))

    def allowance(self, peer) -> int | None:
        """How many batches this peer may hold now; None: not measured yet (its credit decides).

        Little's law: to return `rate` frames a second when each takes `best_s` from assignment
        to result without queueing, rate x best_s frames' worth of batches must be out; a quarter more covers the
        jitter. A peer held back below its capacity returns work as fast as it gets it, so its
        measured need is HEADROOM x the allowance: it grows until its own queue, not the limit,
        stops it (a laptop that was busy for a while gets its share back). Never fewer than its
        workers and one on its way: rate x best_s underestimates what is out when batch times vary
        (the best is faster than the typical), and without the floor the allowance would shrink
        round after round to MIN_ALLOWANCE, leaving a 16-core lab PC one batch at work.
        """
        known = self._peers.get(peer)
        rate = known.rate() if known is not None else None
        if rate is None or known.best_s is None:
            return None
        return max(MIN_ALLOWANCE, known.workers + 1, math.ceil(HEADROOM * rate * known.best_s))  # frames/s x s/frame: batches out

    def pipe_cap(self) -> int:
        """How many batches may be out, all peers together, before a peer gets one beyond its first.
        Little's law on the requester's own delivery: the batches a second it gets back x the
        longer of PIPE_TARGET_S and PIPE_WORK_BATCHES batches' work, a quarter more. 0 until two
        results have come back (then a batch a worker goes, and one in reserve waits)."""
        if len(self._delivered) < 2 or self._busy_s is None:
            return 0
        span = self._delivered[-1] - self._delivered[0]
        if span <= 0:
            return 0
        rate = (len(self._delivered) - 1) / span
        return math.ceil(HEADROOM * rate * max(PIPE_TARGET_S, PIPE_WORK_BATCHES * self._busy_s))

    def batches_out(self) -> int:
        """Batches handed out and not answered, a copy counted with each holder."""
        return sum(len(b.holders) for b in self._in_flight.values())

    def _expected_s(self, peer, batch: Batch) -> float | None:
        known = self._peers.get(peer)
        if known is None or known.pace_s is None:
            return None
        return known.pace_s * len(batch.frames)

    def _typical_pace_s(self) -> float | None:
        paces = sorted(p.pace_s for p in self._peers.values() if p.pace_s is not None)
        return paces[len(paces) // 2] if paces else None

    def _copy_wins(self, peer, batch: Batch, now: float) -> bool:
        """Would a copy on this idle peer likely finish first? Overdue against the holder's own
        pace, or the holder needs FASTER_FACTOR x as long from now as this peer would."""
        holder = next(iter(batch.holders))
        held = now - batch.assigned_at.get(holder, now)
        expected = self._expected_s(holder, batch)
        if expected is None:  # the holder has not finished anything yet: judge it by the others
            typical = self._typical_pace_s()
            expected = None if typical is None else typical * len(batch.frames)
        if expected is None:
            return False
        if held > max(OVERDUE_MIN_S, OVERDUE_FACTOR * expected):
            return True
        mine = self._expected_s(peer, batch)
        return mine is not None and expected - held > FASTER_FACTOR * mine

    def copies_in_flight(self) -> int:
        return sum(b.copy_to is not None for b in self._in_flight.values())

    def copy_cap(self) -> int:
        return max(1, len(self._peers) // PEERS_PER_COPY)

    # -- events -----------------------------------------------------------------------------------
    def assign(self, peer) -> Batch | None:
        """The next batch for this peer, or None (nothing it may take, or it holds enough)."""
        self.pace(peer)  # known from now on: it counts towards the copy cap
        limit = self.allowance(peer)
        holding = self.outstanding(peer)
        if limit is not None and holding >= limit:
            return None
        cap = self.pipe_cap()
        # Until the pipe is measured a batch for each worker goes (a 16-core lab PC starts with 16);
        # then everything beyond a peer's first batch waits for room under the cap.
        if holding >= (1 if cap else self.pace(peer).workers) and self.batches_out() >= cap:
            return None
        now = self._clock()
        for position, batch in enumerate(self._pending):
            if not self.may_take(peer, batch):
                continue
            del self._pending[position]
            batch.holders.add(peer)
            batch.assigned_at[peer] = now
            self._in_flight[batch.id] = batch
            return batch
        if not self._exhausted or self.outstanding(peer):
            return None  # a peer with work of its own is not idle: copies go to idle peers only
        if self.copies_in_flight() >= self.copy_cap():
            return None
        for batch in self._in_flight.values():
            if (len(batch.holders) == 1 and peer not in batch.holders and batch.only_for is None
                    and self.may_take(peer, batch) and self._copy_wins(peer, batch, now)):
                batch.holders.add(peer)
                batch.assigned_at[peer] = now
                batch.copy_to = peer
                self.stats.reissued += 1
                return batch
        return None

    def complete(self, peer, batch_id: int, busy_s: float | None = None) -> Batch | None:
        """The batch if this is its first result from a peer that was given it, else None.
        busy_s: the peer's own time on it (its word: only the pipe's size follows it, bounded by
        the round trip)."""
        batch = self.held_by(peer, batch_id)
        if batch is None:
            return None
        del self._in_flight[batch_id]  # a late copy's result now finds nothing: dropped
        now = self._clock()
        per_frame = max(0.0, now - batch.assigned_at.get(peer, now)) / max(1, len(batch.frames))
        known = self.pace(peer)
        known.pace_s = per_frame if known.pace_s is None else (1 - PACE_WEIGHT) * known.pace_s + PACE_WEIGHT * per_frame
        known.best_s = per_frame if known.best_s is None else min(known.best_s, per_frame)
        known.finished.append((now, len(batch.frames)))
        self._delivered.append(now)
        if busy_s is not None and math.isfinite(busy_s):
            work = min(max(0.0, busy_s), now - batch.assigned_at.get(peer, now))
            self._busy_s = work if self._busy_s is None else (1 - BUSY_WEIGHT) * self._busy_s + BUSY_WEIGHT * work
        if batch.copy_to is not None:
            if peer == batch.copy_to:
                self.stats.copies_won += 1
            else:
                self.stats.copies_lost += 1
        return batch

    def _drop_holder(self, peer, batch: Batch) -> None:
        batch.holders.discard(peer)
        if len(batch.holders) < 2:
            batch.copy_to = None  # one holder left: no copy is in flight

    def fail(self, peer, batch_id: int) -> None:
        batch = self.held_by(peer, batch_id)
        if batch is None:
            return
        self._drop_holder(peer, batch)
        batch.failed_on.add(self._machine_of(peer))
        if batch.holders:
            return
        del self._in_flight[batch_id]
        if len(batch.failed_on) >= MAX_ATTEMPTS:
            self._give_up(batch)
        else:
            self._pending.appendleft(batch)

    def release(self, peer) -> int:
        """A peer left or vanished: its batches go back to the front of the queue at once."""
        returned = 0
        self._peers.pop(peer, None)
        for batch_id in [b for b, batch in self._in_flight.items() if peer in batch.holders]:
            batch = self._in_flight[batch_id]
            self._drop_holder(peer, batch)
            batch.lost_with += 1
            if not batch.holders:
                del self._in_flight[batch_id]
                if batch.lost_with >= MAX_ATTEMPTS:
                    self._give_up(batch)
                else:
                    self._pending.appendleft(batch)
                    returned += 1
        return returned

    def outstanding(self, peer) -> int:
        return sum(peer in b.holders for b in self._in_flight.values())

    def overdue(self, now: float, limit_s: float) -> list[tuple[object, int]]:
        """(peer, batch id) pairs held longer than limit_s: a stalled peer, or one that stalls on purpose."""
        return [(peer, b.id) for b in self._in_flight.values() for peer in b.holders if now - b.assigned_at.get(peer, now) > limit_s]

    @property
    def done(self) -> bool:
        return self._exhausted and not self._pending and not self._in_flight
