"""The face crops behind each verdict, kept in memory only (faces are personal data: never on disk).

The requester feeds an EvidenceKeeper from its socket thread as results count; anyone else (the
GUI) reads immutable EvidenceSnapshots, from any thread. Pure: no sockets, no Qt.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from p2p_attendance.attendance.clustering import EnrolledFaces, UnknownGroup, group_unknown_faces
from p2p_attendance.attendance.model import Face

EVIDENCE_PER_STUDENT = 6  # the best match in each sixth of the lecture
# Descriptors kept per student for the unknown-face grouping (clustering.group_unknown_faces): the
# closest match in each eighth of the lecture, so a student's hard tracks (turned, dimmed) are
# compared with how they looked in this video, not only with their enrollment photo.
DESCRIPTORS_PER_STUDENT = 8
MAX_UNKNOWN_EVIDENCE = 300  # crops of faces that matched nobody, spread over the lecture
UNKNOWN_SLOTS = 30  # ... at most MAX_UNKNOWN_EVIDENCE / UNKNOWN_SLOTS per part: a late stranger gets crops too


@dataclass(frozen=True, eq=False)
class Evidence:
    """One face crop that backs a decision."""

    time_s: float
    distance: float
    jpeg: bytes
    encoding: np.ndarray | None = None  # unknown faces only: to add them to a student's photos
    peer: bytes = b""  # who sent it: a quarantined peer's evidence is dropped
    face: tuple[int, int] | None = None  # (frame index, face position): its place in an UnknownGroup


@dataclass(frozen=True, eq=False)
class EvidenceSnapshot:
    """The evidence at one moment; never changes (safe to read on any thread). A new snapshot
    object means new evidence (== is identity)."""

    students: Mapping[str, tuple[Evidence, ...]] = field(default_factory=lambda: MappingProxyType({}))
    unknown: tuple[Evidence, ...] = ()
    # student id -> (k, 128) float32, k <= DESCRIPTORS_PER_STUDENT: descriptors of sightings the
    # teacher's computer computed or verified itself (never a volunteer's word)
    descriptors: Mapping[str, np.ndarray] = field(default_factory=lambda: MappingProxyType({}))

    def of_student(self, student_id: str) -> tuple[Evidence, ...]:
        return self.students.get(student_id, ())


class EvidenceKeeper:
    """Which crops to keep: per student the best match in each part of the lecture (the teacher
    reviewing a verdict wants to see the student early, in the middle and late, not six
    near-identical seconds); unknown faces up to a bound, spread over the lecture."""

    def __init__(self, duration_s: float):
        self._student_slot_s = max(1.0, duration_s / EVIDENCE_PER_STUDENT)
        self._unknown_slot_s = max(1.0, duration_s / UNKNOWN_SLOTS)
        self._unknown_per_slot = max(1, MAX_UNKNOWN_EVIDENCE // UNKNOWN_SLOTS)
        self._lock = threading.Lock()
        self._students: dict[str, list[Evidence]] = {}
        self._unknown: list[Evidence] = []
        self._unknown_in_slot: dict[int, int] = {}
        self._descriptor_slot_s = max(1.0, duration_s / DESCRIPTORS_PER_STUDENT)
        self._descriptors: dict[str, dict[int, tuple[float, np.ndarray]]] = {}  # student -> slot -> (distance, descriptor)
        self._snapshot: EvidenceSnapshot | None = EvidenceSnapshot()

    def keep(self, face: Face, frame_index: int, position: int, time_s: float, crop: bytes, encoding: np.ndarray, peer: bytes) -> None:
        """Offer the crop of face (faces[position] of frame frame_index); kept if it is among the best."""
        if not crop:
            return
        with self._lock:
            if face.student_id is None:
                slot = int(time_s // self._unknown_slot_s)
                if len(self._unknown) < MAX_UNKNOWN_EVIDENCE and self._unknown_in_slot.get(slot, 0) < self._unknown_per_slot:
                    self._unknown_in_slot[slot] = self._unknown_in_slot.get(slot, 0) + 1
                    self._unknown.append(Evidence(time_s, face.distance, crop, np.array(encoding, np.float32), peer, (frame_index, position)))
                    self._snapshot = None
                return
            kept = self._students.setdefault(face.student_id, [])
            slot_s = self._student_slot_s
            same_slot = next((e for e in kept if e.time_s // slot_s == time_s // slot_s), None)
            if same_slot is not None and same_slot.distance <= face.distance:
                return
            if same_slot is not None:
                kept[:] = [e for e in kept if e is not same_slot]
            kept.append(Evidence(time_s, face.distance, crop, peer=peer, face=(frame_index, position)))
            kept.sort(key=lambda e: e.time_s)
            self._snapshot = None

    def keep_descriptor(self, student_id: str, time_s: float, encoding: np.ndarray, distance: float, tolerance: float) -> None:
        """Offer the descriptor of a sighting of student_id that the teacher's computer computed or
        verified (the caller's duty: a volunteer's word never gets here). Kept when it is within the
        tolerance and the closest so far in its part of the lecture."""
        vector = np.array(encoding, np.float32).reshape(-1)
        if vector.size != 128 or not np.isfinite(vector).all() or not distance <= tolerance:  # NaN distance fails too
            return
        slot = min(DESCRIPTORS_PER_STUDENT - 1, int(max(0.0, time_s) // self._descriptor_slot_s))  # bounded, whatever the time
        with self._lock:
            kept = self._descriptors.setdefault(student_id, {})
            if slot in kept and kept[slot][0] <= distance:
                return
            kept[slot] = (float(distance), vector)
            self._snapshot = None

    def drop_peers(self, peers: Iterable[bytes]) -> None:
        """Forget what these peers sent (they were caught lying)."""
        peers = set(peers)
        with self._lock:
            for kept in self._students.values():
                kept[:] = [e for e in kept if e.peer not in peers]
            self._unknown = [e for e in self._unknown if e.peer not in peers]
            self._unknown_in_slot = {}
            for e in self._unknown:
                slot = int(e.time_s // self._unknown_slot_s)
                self._unknown_in_slot[slot] = self._unknown_in_slot.get(slot, 0) + 1
            self._snapshot = None

    def snapshot(self) -> EvidenceSnapshot:
        with self._lock:
            if self._snapshot is None:
                students = {sid: tuple(kept) for sid, kept in self._students.items() if kept}
                descriptors = {sid: np.array([v for _, (_, v) in sorted(kept.items())], np.float32) for sid, kept in self._descriptors.items()}
                for matrix in descriptors.values():
                    matrix.flags.writeable = False  # shared by every reader of the snapshot
                self._snapshot = EvidenceSnapshot(MappingProxyType(students), tuple(self._unknown), MappingProxyType(descriptors))
            return self._snapshot


@dataclass(frozen=True)
class UnknownPersonEvidence:
    """An unknown person as the report counts them, with the crops kept of their faces."""

    group: UnknownGroup
    crops: tuple[Evidence, ...]  # in time order; may be empty (crops are bounded, faces are not)

    @property
    def label(self) -> str:
        return self.group.label


def with_crops(groups: Iterable[UnknownGroup], snapshot: EvidenceSnapshot) -> list[UnknownPersonEvidence]:
    """Each unknown group with the kept crops of its own faces (matched by frame and position)."""
    by_face = {e.face: e for e in snapshot.unknown if e.face is not None}
    return [UnknownPersonEvidence(g, tuple(by_face[key] for key in g.faces if key in by_face)) for g in groups]


def unknown_people(frames, snapshot: EvidenceSnapshot, enrolled: EnrolledFaces | None = None) -> list[UnknownPersonEvidence]:
    """The unknown people and unsure groups of these frames (the report's rule and numbering, the
    snapshot's kept student descriptors and the job's roster included), with their crops."""
    return with_crops(group_unknown_faces(frames, descriptors=snapshot.descriptors, enrolled=enrolled), snapshot)
