"""Classes and their students, stored as one JSON file per class under the user data dir.

Each enrolled photo keeps its SHA-256 and its encoding, so re-enrolling the same photos costs
nothing and never duplicates a student. Thumbnails live beside the JSON for the GUI.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from p2p_attendance import paths
from p2p_attendance.attendance.model import Student
from p2p_attendance.errors import RosterError
from p2p_attendance.fileio import private_dir, write_private
from p2p_attendance.peertext import check_peer_text, displayable

FORMAT_VERSION = 1
MAX_NAME_CHARS = 200  # a class's or a student's name


def check_name(value: str, what: str, limit: int = MAX_NAME_CHARS) -> str:
    """A class's or student's name as it enters (typed, or read from a photo folder), stripped;
    RosterError unless it follows the rule for peer text: names reach reports, logs, terminals
    and other computers (the job's advert), and a lone surrogate cannot even be written as UTF-8.
    Names already saved are not checked again: the report writers replace what they cannot write."""
    try:
        name = check_peer_text(value, limit, what).strip()
    except ValueError as exc:
        raise RosterError(f"The {exc} ('{displayable(str(value), 80)}'): use another name") from None
    if not name:
        raise RosterError(f"The {what} is empty")
    return name


@dataclass
class EnrolledPhoto:
    """One enrollment photo: its file name, hash and face encoding."""
    file: str
    sha256: str
    encoding: list[float]


@dataclass
class EnrolledStudent:
    """A student of a class with the photos enrolled for them."""
    id: str
    name: str
    photos: list[EnrolledPhoto] = field(default_factory=list)


@dataclass
class ClassRoster:
    """A class: its name and enrolled students."""
    name: str
    students: list[EnrolledStudent] = field(default_factory=list)

    def student(self, student_id: str) -> EnrolledStudent | None:
        return next((s for s in self.students if s.id == student_id), None)

    def as_students(self) -> list[Student]:
        return [Student(s.id, s.name) for s in self.students]

    def matrix(self) -> tuple[list[str], np.ndarray]:
        """(student id per row, (rows, 128) float32): one row per enrolled photo."""
        ids = [s.id for s in self.students for _ in s.photos]
        rows = [p.encoding for s in self.students for p in s.photos]
        return ids, np.asarray(rows, np.float32).reshape(-1, 128)


def slugify(text: str) -> str:
    """A file-name-safe form of a name (lower case, underscores)."""
    slug = re.sub(r"[^\w]+", "_", text.strip().lower(), flags=re.UNICODE).strip("_")
    return slug or "unnamed"


def class_dir(name: str, root: Path | None = None) -> Path:
    """The folder of a class."""
    return (root or paths.classes_dir()) / slugify(name)


def thumbnail_path(class_name: str, student_id: str, root: Path | None = None) -> Path:
    """Where a student's thumbnail is kept."""
    return class_dir(class_name, root) / "thumbs" / f"{slugify(student_id)}.jpg"


def list_classes(root: Path | None = None) -> list[ClassRoster]:
    """Every readable class on disk, in folder order (unreadable ones are skipped)."""
    root = root or paths.classes_dir()
    found = []
    for entry in sorted(root.iterdir()) if root.exists() else []:
        if (entry / "class.json").is_file():
            try:
                found.append(_read(entry / "class.json"))
            except RosterError:
                continue
    return found


def load_class(name: str, root: Path | None = None) -> ClassRoster:
    """A class by name; RosterError naming close matches when there is none."""
    path = class_dir(name, root) / "class.json"
    if not path.is_file():
        names = [c.name for c in list_classes(root)]
        by_folded = {n.casefold(): n for n in names}
        close = [by_folded[m] for m in difflib.get_close_matches(name.casefold(), list(by_folded), n=3, cutoff=0.6)]
        if close:
            hint = "Did you mean " + " or ".join(f"'{n}'" for n in close) + "?"
            raise RosterError(f"No class named '{name}'. {hint} (classes: {', '.join(names)})")
        known = ", ".join(names) or "none yet"
        raise RosterError(f"No class named '{name}' (classes: {known}). Enroll it first: p2p-attendance enroll PHOTOS --class '{name}'")
    return _read(path)


def save_class(roster: ClassRoster, root: Path | None = None) -> Path:
    """Save a class's roster (atomic, private); returns the file."""
    folder = private_dir(class_dir(roster.name, root))
    path = folder / "class.json"
    payload = {"format": FORMAT_VERSION, "name": roster.name, "students": [asdict(s) for s in roster.students]}
    return write_private(path, lambda tmp: tmp.write_text(json.dumps(payload), encoding="utf-8"))


def delete_class(name: str, root: Path | None = None) -> None:
    """Remove a class's folder and everything in it."""
    shutil.rmtree(class_dir(name, root), ignore_errors=True)


def rename_student(roster: ClassRoster, student_id: str, new_name: str) -> None:
    """Give a student a new display name (a blank name keeps the old one)."""
    student = roster.student(student_id)
    if student is None:
        raise RosterError(f"No student '{student_id}' in class '{roster.name}'")
    if new_name.strip():
        student.name = check_name(new_name, "student's name")


def remove_student(roster: ClassRoster, student_id: str, root: Path | None = None) -> None:
    """Remove a student from the roster and delete their thumbnail."""
    roster.students = [s for s in roster.students if s.id != student_id]
    thumbnail_path(roster.name, student_id, root).unlink(missing_ok=True)


@dataclass(frozen=True)
class FaceSample:
    """A face to add to a student's photos, e.g. an unknown face the teacher named in the review."""

    source: str  # where it was seen, kept as the photo's name ("from lecture.mp4 at 12:03")
    jpeg: bytes  # the crop: its SHA-256 keeps the same face from being added twice
    encoding: Sequence[float]  # its 128-d descriptor


def add_samples(class_name: str, student_id: str, samples: Iterable[FaceSample], fallback: ClassRoster | None = None,
                root: Path | None = None) -> int:
    """Add face samples to a student of a class and save the class; returns how many were added.

    The class is read from disk (it may have changed since the job started); `fallback` (the
    job's own roster) stands in when it is gone. A sample already there (same crop) or whose
    descriptor is not 128 finite numbers is skipped; an unknown student adds nothing. Raises
    OSError when the class cannot be written."""
    try:
        roster = load_class(class_name, root)
    except RosterError:
        roster = fallback
    student = roster.student(student_id) if roster is not None else None
    if student is None:
        return 0
    known = {p.sha256 for p in student.photos}
    added = 0
    for sample in samples:
        encoding = np.asarray(sample.encoding, np.float64).ravel()
        sha = hashlib.sha256(sample.jpeg).hexdigest()
        if sha in known or encoding.shape != (128,) or not np.isfinite(encoding).all():
            continue
        student.photos.append(EnrolledPhoto(sample.source, sha, [float(x) for x in encoding]))
        known.add(sha)
        added += 1
    if added:
        save_class(roster, root)
    return added


def _read(path: Path) -> ClassRoster:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        students = [
            EnrolledStudent(s["id"], s["name"], [EnrolledPhoto(p["file"], p["sha256"], list(p["encoding"])) for p in s["photos"]])
            for s in data["students"]
        ]
        return ClassRoster(data["name"], students)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RosterError(f"Class file {path} is damaged: {exc}") from exc
