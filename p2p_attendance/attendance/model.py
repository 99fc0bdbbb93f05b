"""Plain data that flows from the face engine to the report. No I/O, no Qt, no sockets."""
from __future__ import annotations

from dataclasses import dataclass, field

PRESENT = "present"
ABSENT = "absent"


@dataclass(frozen=True)
class Face:
    """One face found in one sampled frame.

    box is (left, top, right, bottom) in pixels of the original frame. student_id is None for a
    face that matches nobody in the roster; distance is the distance to the best roster match
    (or inf when the roster is empty). score is the detector's confidence.
    """

    box: tuple[int, int, int, int]
    student_id: str | None
    distance: float
    score: float = 0.0


@dataclass(frozen=True)
class FrameResult:
    """Everything the engine found in one sampled frame. encodings[i] belongs to faces[i]."""

    index: int  # sampled-frame number, 0..frames_total-1
    time_s: float  # seconds from the start of the video
    faces: tuple[Face, ...]
    encodings: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class Student:
    """An enrolled student as the attendance rule sees them: id and display name."""

    id: str
    name: str


@dataclass
class StudentAttendance:
    """One student's line of the report: the verdict and the sightings behind it."""

    id: str
    name: str
    status: str  # PRESENT or ABSENT
    presence: float  # share of observed time windows in which the student was seen, 0..1
    first_seen_s: float | None
    last_seen_s: float | None
    frames_seen: int
    windows_seen: list[bool] = field(default_factory=list)  # one per time window
    manual: bool = False  # status set by the teacher, not by the rule
    best_distance: float | None = None


@dataclass
class UnknownPerson:
    """One group of faces that matched nobody in the roster, as the report lists it: an unknown
    person (a stranger), or an unsure group that looks like students the rule could not tell apart."""

    label: str  # "Unknown 1", ... or "Unsure 1", ...
    frames_seen: int
    first_seen_s: float
    last_seen_s: float
    windows_seen: list[bool] = field(default_factory=list)
    looks_like: list[str] = field(default_factory=list)  # an unsure group: the students' names, nearest first
    looks_like_ids: list[str] = field(default_factory=list)  # ... and their ids, in the same order

    @property
    def unsure(self) -> bool:
        """Looks like enrolled students (one of them, most likely): not a stranger."""
        return bool(self.looks_like)


def looks_like_text(names: list[str] | tuple[str, ...]) -> str:
    """'looks like Ann', 'looks like Ann or Ben', 'looks like Ann, Ben or Cy' ('' for none)."""
    names = list(names)
    if not names:
        return ""
    return "looks like " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1])


@dataclass
class PeerWork:
    """How many sampled frames one computer (the teacher's own or a volunteer) worked through."""

    name: str
    frames: int


@dataclass
class Quarantined:
    """A volunteer the teacher's computer stopped trusting, and why."""

    name: str  # the peer's name as it joined
    why: str  # what it was caught doing


@dataclass
class IntegrityInfo:
    """What the teacher's computer checked of the volunteers' work, and whom it caught lying."""

    sightings_verified: int = 0  # claimed sightings recomputed on the teacher's computer and confirmed
    lies_caught: int = 0  # claims or answers proven false
    batches_checked: int = 0  # batches done twice and compared
    quarantined: list[Quarantined] = field(default_factory=list)
    verification_cpu_s: float = 0.0  # the teacher's computer's CPU spent checking
    volunteer_cpu_s: float = 0.0  # the volunteers' CPU spent on the job
    verified: bool = True  # False: sightings could not be checked (every one counted)


@dataclass
class JobInfo:
    """What the report says about the job itself: video, class, settings, timing, helpers, warnings."""

    video: str
    class_name: str
    frames_total: int
    frames_processed: int
    sample_fps: float
    elapsed_s: float
    duration_s: float
    tolerance: float
    started_at: str  # ISO 8601, local time with offset
    peers: list[PeerWork] = field(default_factory=list)
    frames_from_checkpoint: int = 0
    warnings: list[str] = field(default_factory=list)
    integrity: IntegrityInfo = field(default_factory=IntegrityInfo)

    @property
    def partial(self) -> bool:
        """Stopped before every sampled frame was looked at: the report covers only part of the video."""
        return self.frames_processed < self.frames_total


@dataclass
class AttendanceReport:
    """The finished (or partial) attendance of one lecture video, as every writer and the review read it."""

    students: list[StudentAttendance]
    unknown_faces: list[UnknownPerson]
    window_s: float  # length of one presence window
    window_starts_s: list[float]  # start time of each window
    windows_observed: list[bool]  # False where the camera saw no face at all (dark, blocked)
    presence_threshold: float
    job: JobInfo
