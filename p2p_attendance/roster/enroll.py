"""Enrolling a folder of photos into a class: one face per photo, problems reported per file."""
from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from p2p_attendance.compute.video import read_image_rgb
from p2p_attendance.errors import EnrollCancelled, RosterError
from p2p_attendance.fileio import private_dir, write_private_bytes
from p2p_attendance.peertext import displayable
from p2p_attendance.roster.store import (
    ClassRoster,
    EnrolledPhoto,
    EnrolledStudent,
    check_name,
    load_class,
    save_class,
    slugify,
    thumbnail_path,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MAX_SIDE = 1280  # enrollment photos are portraits: faces stay far above the detector's minimum
THUMB_SIZE = 96


@dataclass
class PhotoProblem:
    """A photo that could not be enrolled, and why."""

    file: str
    reason: str


@dataclass
class EnrollResult:
    """What an enrolment did: the updated roster, the students enrolled, the photos refused."""

    roster: ClassRoster
    enrolled: list[str] = field(default_factory=list)  # student ids enrolled or updated
    problems: list[PhotoProblem] = field(default_factory=list)
    photos_reused: int = 0  # photos whose encoding was already stored


@dataclass
class PhotoEntry:
    """One photo found in the enrolment folder and the student it belongs to."""

    path: Path
    student_id: str
    name: str


def display_name(stem: str) -> str:
    """A student's name from a file or folder name: underscores become spaces, an all-lowercase name is title-cased."""
    name = re.sub(r"[_]+", " ", stem).strip()
    return name.title() if name == name.lower() else name


def find_photos(folder: Path) -> list[PhotoEntry]:
    """Sub-folder per student (folder name = student), or image files named after the student
    ("ada_lovelace.jpg", "ada_lovelace_2.jpg"). An optional roster.csv (student_id,name,photo)
    supplies ids and names; its photo column is relative to the folder (a file or a sub-folder)."""
    if not folder.is_dir():
        raise RosterError(f"Photo folder not found: {folder}")
    by_photo: dict[Path, tuple[str, str]] = {}
    csv_path = folder / "roster.csv"
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                photo = (row.get("photo") or "").strip()
                sid = (row.get("student_id") or "").strip()
                name = (row.get("name") or "").strip()
                if photo and (sid or name):
                    by_photo[(folder / photo).resolve()] = (sid or slugify(name), name or sid)

    entries = []
    for item in sorted(folder.iterdir()):
        if item.is_dir():
            for photo in sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
                sid, name = by_photo.get(photo.resolve()) or by_photo.get(item.resolve()) or (slugify(item.name), display_name(item.name))
                entries.append(PhotoEntry(photo, sid, name))
        elif item.suffix.lower() in IMAGE_SUFFIXES:
            stem = re.sub(r"[_\- ]*\(?\d+\)?$", "", item.stem) or item.stem
            sid, name = by_photo.get(item.resolve()) or (slugify(stem), display_name(stem))
            entries.append(PhotoEntry(item, sid, name))
    return entries


def enroll_folder(
    folder: str | Path,
    class_name: str,
    engine_factory: Callable[[], object],
    root: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> EnrollResult:
    """Enroll every photo in folder into class_name (created if new) and save the class.

    The folder is the truth for the students it holds: their photo sets are replaced by what is
    there now (encodings reused by file hash); students not in the folder are kept.

    progress(done, total, photo) is called after each photo; once cancelled() is true no further
    photo is looked at and EnrollCancelled is raised, before anything is saved.
    """
    folder = Path(folder)
    class_name = check_name(class_name, "class name")  # refused before any photo is looked at
    entries = find_photos(folder)
    try:
        roster = load_class(class_name, root)
    except RosterError:
        roster = ClassRoster(class_name)
    cached = {p.sha256: p.encoding for s in roster.students for p in s.photos}
    result = EnrollResult(roster)
    engine = None
    new_photos: dict[str, list[EnrolledPhoto]] = {}
    names: dict[str, str] = {}
    thumbs: dict[str, object] = {}

    for entry in _counted(entries, folder, progress, cancelled):
        label = str(entry.path.relative_to(folder))
        try:
            check_name(label, "photo's file name", limit=4096)  # it is kept in the class file and shown
            entry.name = check_name(entry.name, "student's name")
            entry.student_id = check_name(entry.student_id, "student id")
        except RosterError as exc:
            result.problems.append(PhotoProblem(displayable(label, 300), str(exc)))
            continue
        try:
            data = entry.path.read_bytes()
        except OSError as exc:
            result.problems.append(PhotoProblem(label, f"cannot read the file ({exc.strerror})"))
            continue
        sha = hashlib.sha256(data).hexdigest()
        names[entry.student_id] = entry.name
        if sha in cached:
            new_photos.setdefault(entry.student_id, []).append(EnrolledPhoto(label, sha, cached[sha]))
            result.photos_reused += 1
            continue
        rgb = read_image_rgb(entry.path)
        if rgb is None:
            result.problems.append(PhotoProblem(label, "not an image, or a damaged one"))
            continue
        scale = min(1.0, MAX_SIDE / max(rgb.shape[:2]))
        if scale < 1.0:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        engine = engine or engine_factory()
        faces = engine.find_faces(rgb)
        if not faces:
            result.problems.append(PhotoProblem(label, "no face found"))
            continue
        if len(faces) > 1:
            result.problems.append(PhotoProblem(label, f"{len(faces)} faces found; use a photo of this student alone"))
            continue
        face = faces[0]
        new_photos.setdefault(entry.student_id, []).append(EnrolledPhoto(label, sha, [float(x) for x in face.encoding]))
        thumbs.setdefault(entry.student_id, _crop_thumbnail(rgb, face.box))

    for sid, photos in new_photos.items():
        student = roster.student(sid)
        if student is None:
            student = EnrolledStudent(sid, names[sid])
            roster.students.append(student)
        student.name = names[sid]
        student.photos = photos
        result.enrolled.append(sid)
        if sid in thumbs:
            path = thumbnail_path(class_name, sid, root)
            private_dir(path.parent)
            ok, jpeg = cv2.imencode(path.suffix or ".jpg", cv2.cvtColor(thumbs[sid], cv2.COLOR_RGB2BGR))
            if ok:
                write_private_bytes(path, jpeg.tobytes())  # a student's face: 0600
    roster.students.sort(key=lambda s: s.name.lower())
    save_class(roster, root)
    return result


def _counted(entries: list[PhotoEntry], folder: Path, progress, cancelled):
    """The entries, with progress after each one (however its loop turn ended) and cancelling."""
    for number, entry in enumerate(entries, start=1):
        if cancelled is not None and cancelled():
            raise EnrollCancelled(f"Cancelled after {number - 1} of {len(entries)} photos; the class was not changed.")
        yield entry
        if progress is not None:
            progress(number, len(entries), str(entry.path.relative_to(folder)))
    if cancelled is not None and cancelled():
        raise EnrollCancelled(f"Cancelled after {len(entries)} of {len(entries)} photos; the class was not changed.")


def _crop_thumbnail(rgb, box):
    left, top, right, bottom = box
    pad = (right - left) // 3
    height, width = rgb.shape[:2]
    crop = rgb[max(0, top - pad) : min(height, bottom + pad), max(0, left - pad) : min(width, right + pad)]
    return cv2.resize(crop, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
