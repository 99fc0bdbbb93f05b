"""The check policy: how the requester decides whether to believe a volunteer. Pure functions on
typed records; the requester (swarm/requester.py) applies them.

Threat model (docs/security.md): a student with the join code runs a patched volunteer (or
several connections of one) that marks an absent friend present, hides a present student, or
sends nonsense. The requester never takes a volunteer's word for anything that changes a report:

- Verified sightings. Finding faces is expensive (50-400 ms a frame); checking a claimed face is
  cheap: the teacher's computer holds the frame, and one descriptor at the claimed box costs
  ~10 ms. A student's presence counts only windows in which one of their sightings, picked at
  random, was recomputed on the teacher's computer and matched the student (`judge_sighting`).
  A sighting that does not match at all is a proven lie.
- Hidden faces. A secret share of batches (`should_check`) is done again by a peer the requester
  picks (its own local worker first) and compared face by face, encodings included
  (`answers_agree`); `settle` decides who lied, the teacher's own computer having the last word.
- Results as data. `answer_problem` refuses non-finite or implausible encodings and boxes
  outside the frame before anything is believed.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum

import numpy as np

from p2p_attendance.attendance.model import Face
from p2p_attendance.attendance.tally import window_index
from p2p_attendance.compute.matching import LINK_DISTANCE, MIN_MARGIN, match_batch

DEFAULT_SHARE = 0.05
CLAIM_SLACK = 1e-4  # float noise between two machines' descriptor distances is ~1e-6
DISTANCE_TOLERANCE = 0.02  # honest peers differ by float noise between descriptors (~1e-6)
ENCODING_TOLERANCE = 0.02  # largest Euclidean gap between two honest encodings of one face
# dlib's 128-d face descriptors have a norm of about 1.4 (1.3-1.5 on real faces); far outside
# this a value is not a descriptor at all, and it would pull unknown-face clustering apart.
ENCODING_NORM_RANGE = (0.5, 3.0)
# A recomputed descriptor may differ from the volunteer's a little: within a batch it reuses a
# tracked face's encoding from up to three frames earlier. A sighting is verified when the fresh
# descriptor is within tolerance + VERIFY_SLACK of the student, a lie when it is farther than
# tolerance + LIE_MARGIN (no honest peer comes near: a face moves, it does not become someone
# else), and unsure in between (another of the student's sightings is tried instead).
VERIFY_SLACK = 0.05
LIE_MARGIN = 0.15


class Verdict(str, Enum):
    """What checking a claimed sighting concluded: verified, a proven lie, or not decidable."""

    VERIFIED = "verified"
    LIE = "lie"
    UNSURE = "unsure"


@dataclass(frozen=True)
class BatchAnswer:
    """One peer's answer for one batch: per frame, its faces and their encodings (n, 128)."""

    faces: list[list[Face]]
    encodings: list[np.ndarray]

    def face_count(self) -> int:
        return sum(len(f) for f in self.faces)


@dataclass(frozen=True)
class Sighting:
    """A volunteer's claim that a student is at `box` in one sampled frame."""

    student_id: str
    window: int
    frame_index: int
    box: tuple[int, int, int, int]
    peer: bytes  # the connection that claimed it
    machine: tuple[str, str]  # the machine it came from (peers.machine_key)
    encoding: bytes = b""  # the descriptor the peer sent for it (128 float32)


@dataclass(frozen=True)
class Answerer:
    """Who gave an answer under comparison."""

    machine: tuple[str, str]
    trusted: bool  # the teacher's own computer


def should_check(secret: str, batch_id: int, share: float) -> bool:
    """Deterministic per job and batch, unpredictable to peers: secret never leaves the requester
    (the job id would not do: every peer is told it)."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{secret}/{batch_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def answer_problem(answer: BatchAnswer, frame_size: tuple[int, int]) -> str | None:
    """Why an answer cannot be true as data (None when it can): every encoding finite and of a
    descriptor's norm, every box a box inside the frame (width, height)."""
    width, height = frame_size
    low, high = ENCODING_NORM_RANGE
    for faces, encodings in zip(answer.faces, answer.encodings):
        if encodings.shape != (len(faces), 128):
            return "encodings do not match its faces"
        if not np.isfinite(encodings).all():
            return "an encoding is not finite (NaN or infinity)"
        norms = np.linalg.norm(encodings.astype(np.float64), axis=1)
        if len(norms) and not ((norms >= low) & (norms <= high)).all():
            return f"an encoding's norm is {float(norms[(norms < low) | (norms > high)][0]):.3g}, not a face descriptor's"
        for face in faces:
            left, top, right, bottom = face.box
            if not (0 <= left < right <= width and 0 <= top < bottom <= height):
                return f"a face box {list(face.box)} lies outside the {width}x{height} frame"
    return None


def claim_problem(answer: BatchAnswer, roster: np.ndarray, roster_ids: list[str], tolerance: float) -> str | None:
    """Why the names in an answer do not follow from its own encodings (None when they do). The
    requester matches the encodings itself (compute/matching, the volunteers' own rule): a peer
    that renames a stranger as a friend, or a present student as nobody, without forging the
    encoding is caught here, in every batch, for free. Another machine's floats differ in the last
    bits, so a face at a threshold (tolerance, margin, track link) may fall either side there: a
    face's name stands when the rule gives it with one threshold moved by CLAIM_SLACK."""
    boxes = [[face.box for face in faces] for faces in answer.faces]
    reruns = [match_batch(boxes, answer.encodings, roster, roster_ids, tolerance)]
    problem = _names_problem(answer, reruns)
    if problem is None:
        return None
    for shift in (-CLAIM_SLACK, CLAIM_SLACK):  # only when the plain rerun disagrees: rare, cheap
        reruns.append(match_batch(boxes, answer.encodings, roster, roster_ids, tolerance + shift))
        reruns.append(match_batch(boxes, answer.encodings, roster, roster_ids, tolerance, min_margin=MIN_MARGIN + shift))
        reruns.append(match_batch(boxes, answer.encodings, roster, roster_ids, tolerance, link_distance=LINK_DISTANCE + shift))
    return problem if _names_problem(answer, reruns) else None


def _names_problem(answer: BatchAnswer, reruns: list) -> str | None:
    """The first face whose name and distance no rerun of the matching gives (None when each has one)."""
    for f, faces in enumerate(answer.faces):
        for i, face in enumerate(faces):
            given = [batch[f][i] for batch in reruns]
            if any(face.student_id == sid and abs(face.distance - min(d, 99.0)) <= 1e-3 for sid, d in given):
                continue
            student_id, distance = given[0]
            if face.student_id != student_id and all(face.student_id != sid for sid, _ in given):
                return f"it named {face.student_id or 'nobody'} where its own encoding is {student_id or 'nobody on the roster'}"
            return f"it gave a distance of {face.distance:.3f} for one of {distance:.3f}"
    return None


def _ordered(faces: list[Face], encodings: np.ndarray) -> list[tuple[Face, np.ndarray]]:
    return sorted(zip(faces, encodings), key=lambda pair: (pair[0].box, pair[0].student_id or ""))


def answers_agree(first: BatchAnswer, second: BatchAnswer, tolerance: float = DISTANCE_TOLERANCE) -> bool:
    """Same faces (boxes), same students, distances and encodings within float noise, frame by frame."""
    if len(first.faces) != len(second.faces):
        return False
    for faces_a, enc_a, faces_b, enc_b in zip(first.faces, first.encodings, second.faces, second.encodings):
        if len(faces_a) != len(faces_b):
            return False
        for (fa, ea), (fb, eb) in zip(_ordered(faces_a, enc_a), _ordered(faces_b, enc_b)):
            if fa.box != fb.box or fa.student_id != fb.student_id or abs(fa.distance - fb.distance) > tolerance:
                return False
            if not float(np.linalg.norm(ea.astype(np.float64) - eb)) <= ENCODING_TOLERANCE:  # NaN fails too
                return False
    return True


def settle(answers: list[tuple[Answerer, BatchAnswer]]) -> tuple[list[tuple[str, str]], bool]:
    """(machines that lied, settled?) for two or more answers to one batch. The teacher's own
    computer is right by definition: whoever disagrees with it lied. Without it nothing is
    settled (two connections of one machine, or two friends, can agree on a lie); the caller
    then asks its own computer."""
    trusted = next((answer for who, answer in answers if who.trusted), None)
    if trusted is None:
        return [], False
    liars = []
    for who, answer in answers:
        if not who.trusted and not answers_agree(trusted, answer) and who.machine not in liars:
            liars.append(who.machine)
    return liars, True


def distance_to_student(fresh: np.ndarray, student_encodings: np.ndarray) -> float:
    """A recomputed descriptor's distance to the student: to the nearest of their roster rows."""
    return float(np.linalg.norm(student_encodings.astype(np.float64) - fresh, axis=1).min())


def judge_sighting(fresh: np.ndarray, sent: np.ndarray, student_encodings: np.ndarray, tolerance: float) -> Verdict:
    """A claimed sighting against the descriptor recomputed at its box on the teacher's computer
    (sent: the encoding the peer sent for it; student_encodings: the student's roster rows).
    A lie: the face there is not the student, or not the face whose encoding was sent (a forged
    encoding: the sent one and the fresh one would not even match each other by the rule)."""
    if fresh.shape != (128,) or not np.isfinite(fresh).all() or len(student_encodings) == 0:
        return Verdict.UNSURE  # no face to align there: the claim is not believed, nor proven false
    distance = distance_to_student(fresh, student_encodings)
    if distance <= tolerance + VERIFY_SLACK:
        return Verdict.VERIFIED
    if distance > tolerance + LIE_MARGIN or (sent.shape == (128,) and float(np.linalg.norm(sent.astype(np.float64) - fresh)) > tolerance):
        return Verdict.LIE
    return Verdict.UNSURE


@dataclass(frozen=True)
class FrameCopy:
    """The requester's own copy of a frame as it travelled, kept until its sightings are judged."""

    index: int
    entry: dict  # the frame's entry (keyframe flag)
    payload: bytes  # JPEG or coded keyframe

    @classmethod
    def of(cls, index: int, frame: dict, payload: bytes) -> FrameCopy:
        """The copy of a frame from its batch entry (only its keyframe flag is kept)."""
        return cls(index, {"keyframe": True} if frame.get("keyframe") else {}, payload)


MAX_CLAIMS_KEPT = 8  # per student and window: a random sample of the claims (bounded memory)
# Frames kept for checking, all windows together (~60 MB of 720p JPEGs). Beyond it a pair that
# already has a claim waiting takes no claim needing a new frame: only a checker far behind its
# volunteers gets there, and every pair still keeps one claim to check.
MAX_FRAMES_HELD = 400


class SightingLedger:
    """Which (student, window) pairs are verified, and the claims waiting to be judged: no I/O.

    For each pair not yet verified the ledger keeps a random sample of the claimed sightings (with
    the frames they need) and hands out one, picked at random, to verify; a verified pair drops its
    claims and frames at once. A liar cannot choose which of its claims is checked, and an absent
    student's window holds only lies, so whichever is picked is caught.
    """

    def __init__(self, window_s: float, windows: int, rng=None):
        import random

        self.window_s = window_s
        self.windows = windows
        self.rng = rng or random.SystemRandom()
        self.verified: frozenset[tuple[str, int]] = frozenset()  # replaced, never mutated: other threads read it
        self._claims: dict[tuple[str, int], list[Sighting]] = {}
        self._seen: dict[tuple[str, int], int] = {}  # claims offered per pair, for the reservoir sample
        self._picked: dict[tuple[str, int], Sighting] = {}
        self._withdrawn: set[Sighting] = set()  # picked, then taken back while being checked: its verdict does not count
        self._frames: dict[int, FrameCopy] = {}
        self.sightings_verified = 0
        self.lies = 0
        self.unsure = 0

    def window_of(self, time_s: float) -> int:
        return window_index(time_s, self.window_s, self.windows)

    def claim(self, sighting: Sighting, frame: FrameCopy) -> None:
        key = (sighting.student_id, sighting.window)
        if key in self.verified:
            return  # the window counts already: more claims change nothing in the report
        claims = self._claims.setdefault(key, [])
        if claims and frame.index not in self._frames and len(self._frames) >= MAX_FRAMES_HELD:
            return
        self._seen[key] = seen = self._seen.get(key, 0) + 1
        if len(claims) < MAX_CLAIMS_KEPT:
            claims.append(sighting)
        else:
            slot = self.rng.randrange(seen)
            if slot >= MAX_CLAIMS_KEPT:
                return
            claims[slot] = sighting
            self._release_unused()
        self._frames.setdefault(frame.index, frame)

    def vouch(self, sighting: Sighting) -> None:
        """A sighting from the teacher's own computer: true without a check."""
        key = (sighting.student_id, sighting.window)
        if key not in self.verified:
            self.verified = self.verified | {key}
            self._claims.pop(key, None)
            self._seen.pop(key, None)
            self._release_unused()

    def withdraw(self, sighting: Sighting) -> None:
        """A claim no longer made (a name taken back): not checked, and its verdict, if it is being
        checked now, not counted."""
        key = (sighting.student_id, sighting.window)
        claims = self._claims.get(key, [])
        if sighting in claims:
            claims.remove(sighting)
        if self._picked.get(key) == sighting:
            del self._picked[key]
            self._withdrawn.add(sighting)
        self._release_unused()

    def picks(self) -> list[Sighting]:
        """One claim, at random, for every pair that has claims and none being verified."""
        out = []
        for key, claims in self._claims.items():
            if key not in self._picked and claims:
                self._picked[key] = pick = self.rng.choice(claims)
                out.append(pick)
        return out

    def frame(self, index: int) -> FrameCopy | None:
        return self._frames.get(index)

    def judged(self, sighting: Sighting, verdict: Verdict) -> bool:
        """Take a check's verdict; False where it does not count (the claim was withdrawn meanwhile)."""
        key = (sighting.student_id, sighting.window)
        if sighting in self._withdrawn:
            self._withdrawn.discard(sighting)
            return False
        if self._picked.get(key) == sighting:
            del self._picked[key]
        if verdict == Verdict.VERIFIED:
            self.sightings_verified += 1
            self.verified = self.verified | {key}
            self._claims.pop(key, None)
            self._seen.pop(key, None)
        else:
            self.lies += verdict == Verdict.LIE
            self.unsure += verdict == Verdict.UNSURE
            claims = self._claims.get(key, [])
            if sighting in claims:
                claims.remove(sighting)
        self._release_unused()
        return True

    def drop_machine(self, machine: tuple[str, str]) -> None:
        """A machine was caught lying: none of its claims is believed, or checked, any more."""
        for claims in self._claims.values():
            claims[:] = [c for c in claims if c.machine != machine]
        self._release_unused()

    def _release_unused(self) -> None:
        needed = {c.frame_index for claims in self._claims.values() for c in claims} | {c.frame_index for c in self._picked.values()}
        for index in [i for i in self._frames if i not in needed]:
            del self._frames[index]

    @property
    def waiting(self) -> int:
        """Claims not yet judged, for pairs not yet verified."""
        return sum(len(c) for c in self._claims.values())

    @property
    def frames_held(self) -> int:
        return len(self._frames)
