"""Names across the seams between batches: the requester's half of identity per track (issue 15).

A volunteer names faces per batch of 8 sampled frames (compute/matching.match_batch_tracks). A
student who sits on at a batch's edge has the evidence for their track cut in two there, and each
half may be too close a call. Batches are done anywhere and come back in any order, so the
requester looks at each pair of consecutive batches once both are in (compute/matching.
names_across_seam) and, once both seams of a batch are looked at, hands out the names for it
and the names of its own that a seam takes back (its seat sat beside that student).

The order batches come back in does not matter: a seam is looked at on the two batches' own
answers (never on names another seam gave), and a batch's names are given only when both its seams
are settled; a face that two seams name differently, or a student that two faces of one frame would
get, stays unknown. A batch done again after a crash gets a seam with a neighbour the interrupted
run saved (the checkpoint keeps its descriptors); that neighbour's own names are final. (A liar's
work voided and done again is the exception: its redo gets a seam only with a neighbour still
held or saved before the crash.) No I/O and no sockets: the requester applies what comes out
(and has each name checked like any sighting).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from p2p_attendance.compute.matching import match_batch_tracks, names_across_seam

BEFORE, AFTER = "before", "after"


@dataclass(frozen=True)
class BatchNames:
    """One batch's answer as the requester checked it, with who computed it."""

    indexes: tuple[int, ...]  # sampled frame numbers, in order
    boxes: tuple[list, ...]  # per frame
    encodings: tuple[np.ndarray, ...]  # per frame, (faces, 128)
    source: object  # hashable: who computed it; reported with each name it contributed to


@dataclass(frozen=True)
class SavedBatch:
    """A settled batch as the checkpoint keeps it for a resumed run's seams: its frames, each
    frame's boxes and every face's descriptor, and whether this computer computed it (a
    volunteer's saved word, unchecked, must not take back names another computer's batch gave)."""

    indexes: tuple[int, ...]
    boxes: tuple[list, ...]
    encodings: tuple[np.ndarray, ...]  # per frame, (faces, 128)
    trusted: bool


@dataclass(frozen=True)
class SeamName:
    """A name a seam gives a face whose own track was decided for nobody, and who computed the batches behind it."""

    student: str
    distance: float
    sources: frozenset


@dataclass(frozen=True)
class TakenBack:
    """A name its own batch gave a face that a seam takes back (the joint run has that student on
    another face beside it), and, per seam that took it back, who computed the two batches."""

    student: str
    by: tuple[frozenset, ...]


@dataclass(frozen=True)
class Settled:
    """A batch whose seams are both looked at: the names they give, keyed (frame index, face
    position), and the names of its own they take back."""

    batch: BatchNames
    names: dict[tuple[int, int], SeamName]
    taken_back: dict[tuple[int, int], TakenBack]


class Seams:
    """The batches held until both their seams are looked at, and the names each seam proposed or took back."""

    def __init__(self, roster_encodings: np.ndarray, roster_ids: list[str], tolerance: float, total: int, absent: Iterable[int] = (),
                 saved: Iterable[BatchNames] = ()):
        """total: the video's sampled frames; absent: frames no batch will bring (resumed ones);
        saved: batches among them an interrupted run settled, as their seams saw them."""
        saved = list(saved)
        self.roster_encodings = roster_encodings
        self.roster_ids = list(roster_ids)
        self.tolerance = tolerance
        self.total = total
        self._absent = set(absent)  # frames whose batch will not come or was already settled: no seam there, unless saved
        self._held: dict[int, BatchNames] = {}  # first frame -> batch
        self._ending: dict[int, int] = {}  # last frame -> first frame of the held batch ending there
        self._open: dict[int, set[str]] = {}  # first frame -> sides whose seam is not looked at yet
        self._proposed: dict[int, dict[str, dict[tuple[int, int], SeamName]]] = {}  # first frame -> side -> names
        self._taken_back: dict[int, dict[str, dict[tuple[int, int], TakenBack]]] = {}  # first frame -> side -> names taken back
        self._decided: dict[int, list[list]] = {}  # first frame -> per face, the student its own track was decided for
        self._saved = {batch.indexes[0]: batch for batch in saved}  # first frame -> a batch settled before a resume
        self._saved_ending = {batch.indexes[-1]: batch.indexes[0] for batch in saved}

    @property
    def held(self) -> int:
        return len(self._held)

    def add(self, batch: BatchNames) -> list[Settled]:
        """Take a batch's answer; returns the batches now settled."""
        first, last = batch.indexes[0], batch.indexes[-1]
        decided = match_batch_tracks(list(batch.boxes), list(batch.encodings), self.roster_encodings, self.roster_ids, self.tolerance)[1]
        self.forget(batch.indexes)  # a batch done again (a liar's, redone): its old answer goes
        self._held[first] = batch
        self._decided[first] = decided
        self._ending[last] = first
        self._open[first] = set()
        self._proposed[first] = {BEFORE: {}, AFTER: {}}
        self._taken_back[first] = {BEFORE: {}, AFTER: {}}
        for side, neighbour in ((BEFORE, first - 1), (AFTER, last + 1)):
            if neighbour < 0 or neighbour >= self.total:
                continue
            if neighbour in self._absent:
                saved = self._saved.get(self._saved_ending.get(neighbour, -1) if side == BEFORE else neighbour)
                if saved is not None:  # settled before a resume: only this batch's side counts
                    self._look(*((saved, batch) if side == BEFORE else (batch, saved)))
                continue
            other = self._ending.get(neighbour) if side == BEFORE else neighbour if neighbour in self._held else None
            if other is None:
                self._open[first].add(side)
            elif side == BEFORE:
                self._look(self._held[other], batch)
            else:
                self._look(batch, self._held[other])
        return self._settled()

    def forget(self, indexes: Iterable[int]) -> list[BatchNames]:
        """Frames whose results were voided (a liar's): a held batch with any of them goes, and
        what a seam with them proposed to a batch still held goes too (that side is open again
        where its neighbour is done again). A saved batch with any of them is doubted whole: no
        seam with it any more. Names already handed out are the requester's to take back (it
        knows who gave them); returns the saved batches doubted, whose seam names those are."""
        indexes = set(indexes)
        doubted = set(indexes)
        for first in [f for f, batch in self._held.items() if indexes & set(batch.indexes)]:
            batch = self._held.pop(first)
            del self._ending[batch.indexes[-1]], self._open[first], self._proposed[first], self._taken_back[first], self._decided[first]
        saved = [self._saved.pop(f) for f, batch in list(self._saved.items()) if indexes & set(batch.indexes)]
        for batch in saved:
            del self._saved_ending[batch.indexes[-1]]
            doubted.update(batch.indexes)
        for first, batch in self._held.items():
            for side, neighbour in ((BEFORE, first - 1), (AFTER, batch.indexes[-1] + 1)):
                if neighbour in doubted:
                    self._proposed[first][side] = {}
                    self._taken_back[first][side] = {}
                    if neighbour in indexes:
                        self._open[first].add(side)
        self._absent -= indexes  # done again, they come back as a batch
        return saved

    def finish(self) -> list[Settled]:
        """Every batch still held, settled with the seams it has (the job is over: a neighbour that
        failed on every computer never comes)."""
        for sides in self._open.values():
            sides.clear()
        return self._settled()

    def _look(self, before: BatchNames, after: BatchNames) -> None:
        found = names_across_seam((before.boxes, before.encodings, self._decided_of(before)),
                                  (after.boxes, after.encodings, self._decided_of(after)), self.roster_encodings, self.roster_ids, self.tolerance)
        (names_before, names_after), (back_before, back_after) = found
        sources = frozenset((before.source, after.source))
        for batch, side, names, taken_back in ((before, AFTER, names_before, back_before), (after, BEFORE, names_after, back_after)):
            first = batch.indexes[0]
            if self._held.get(first) is not batch:
                continue  # a batch saved before a resume: its names are final
            self._proposed[first][side] = {(batch.indexes[f], i): SeamName(student, distance, sources) for (f, i), (student, distance) in names.items()}
            self._taken_back[first][side] = {(batch.indexes[f], i): TakenBack(student, (sources,)) for (f, i), student in taken_back.items()}
            self._open[first].discard(side)

    def _decided_of(self, batch: BatchNames) -> list[list]:
        first = batch.indexes[0]
        if self._held.get(first) is batch:
            return self._decided[first]
        return match_batch_tracks(list(batch.boxes), list(batch.encodings), self.roster_encodings, self.roster_ids, self.tolerance)[1]

    def _settled(self) -> list[Settled]:
        out = []
        for first in sorted(f for f, sides in self._open.items() if not sides):
            batch = self._held.pop(first)
            proposed, taken_back = self._proposed.pop(first), self._taken_back.pop(first)
            del self._open[first], self._ending[batch.indexes[-1]], self._decided[first]
            self._absent.update((batch.indexes[0], batch.indexes[-1]))  # a batch done again later sees no seam here
            out.append(Settled(batch, _agreed(proposed[BEFORE], proposed[AFTER]), _either(taken_back[BEFORE], taken_back[AFTER])))
        return out


def _agreed(before: dict[tuple[int, int], SeamName], after: dict[tuple[int, int], SeamName]) -> dict[tuple[int, int], SeamName]:
    """The names both seams agree on (or only one gives), at most one face a student in a frame."""
    names = {}
    for key in before.keys() | after.keys():
        given = [n for n in (before.get(key), after.get(key)) if n is not None]
        if len({n.student for n in given}) == 1:
            names[key] = SeamName(given[0].student, given[0].distance, frozenset().union(*(n.sources for n in given)))
    per_frame = Counter((index, name.student) for (index, _), name in names.items())
    return {key: name for key, name in names.items() if per_frame[(key[0], name.student)] == 1}


def _either(before: dict[tuple[int, int], TakenBack], after: dict[tuple[int, int], TakenBack]) -> dict[tuple[int, int], TakenBack]:
    """The names either seam takes back: the other seam's silence is no evidence for a name (a seam
    never renames a face its own batch decided). Each seam's sources stay apart: whose word is
    enough is the requester's question, and one seam's doubtful word must not spoil the other's."""
    out = dict(before)
    for key, back in after.items():
        out[key] = TakenBack(back.student, out[key].by + back.by) if key in out else back
    return out
