"""Enrolling photos: good, bad and repeated; stored under the user data dir."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from p2p_attendance.compute.engine import FaceEngine
from p2p_attendance.roster.enroll import enroll_folder, find_photos
from p2p_attendance.roster.store import (
    ClassRoster,
    EnrolledStudent,
    RosterError,
    list_classes,
    load_class,
    remove_student,
    rename_student,
    save_class,
)


def _write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture
def photo_folder(tmp_path, sample_faces):
    folder = tmp_path / "photos"
    astronaut = sample_faces["astronaut"][:260]  # her face, not the suit
    _write(folder / "Eileen Collins" / "a.jpg", astronaut)
    _write(folder / "Eileen Collins" / "b.png", cv2.resize(astronaut, None, fx=0.8, fy=0.8))
    _write(folder / "grace_hopper.jpg", sample_faces["grace"])
    _write(folder / "nobody.jpg", np.full((300, 300, 3), 200, np.uint8))  # no face
    two = np.zeros((600, 1024, 3), np.uint8)  # two people in one photo
    two[:, :512] = sample_faces["grace"]
    two[: astronaut.shape[0], 512:] = astronaut
    _write(folder / "Pair" / "two.jpg", two)
    (folder / "broken.jpg").write_bytes(b"this is not an image")
    return folder


def test_enroll_reports_each_bad_photo_and_keeps_the_rest(photo_folder):
    calls = []

    def factory():
        calls.append(1)
        return FaceEngine()

    result = enroll_folder(photo_folder, "Period 3", factory)
    problems = {p.file: p.reason for p in result.problems}
    assert set(problems) == {"nobody.jpg", "broken.jpg", "Pair/two.jpg"}
    assert "no face" in problems["nobody.jpg"]
    assert "2 faces" in problems["Pair/two.jpg"]
    assert "not an image" in problems["broken.jpg"]
    roster = load_class("Period 3")
    assert {(s.id, s.name, len(s.photos)) for s in roster.students} == {("eileen_collins", "Eileen Collins", 2), ("grace_hopper", "Grace Hopper", 1)}
    assert len(calls) == 1  # one engine for the whole folder


def test_reenrolling_updates_and_never_duplicates(photo_folder, tmp_path):
    enroll_folder(photo_folder, "Period 3", FaceEngine)
    again = enroll_folder(photo_folder, "Period 3", FaceEngine)
    roster = load_class("Period 3")
    assert len(roster.students) == 2 and sum(len(s.photos) for s in roster.students) == 3
    assert again.photos_reused == 3
    ids, matrix = roster.matrix()
    assert matrix.shape == (3, 128) and ids.count("eileen_collins") == 2


def test_roster_csv_supplies_ids_and_names(tmp_path, sample_faces):
    folder = tmp_path / "p"
    _write(folder / "img1.jpg", sample_faces["grace"])
    (folder / "roster.csv").write_text("student_id,name,photo\nS-042,Grace Brewster Hopper,img1.jpg\n")
    enroll_folder(folder, "CS 101", FaceEngine)
    (student,) = load_class("CS 101").students
    assert (student.id, student.name) == ("S-042", "Grace Brewster Hopper")


def test_classes_live_under_xdg_data_home_and_can_be_edited(photo_folder):
    enroll_folder(photo_folder, "Period 3", FaceEngine)
    data_home = Path(os.environ["XDG_DATA_HOME"])
    assert (data_home / "p2p-attendance" / "classes" / "period_3" / "class.json").is_file()
    assert (data_home / "p2p-attendance" / "classes" / "period_3" / "thumbs" / "grace_hopper.jpg").is_file()
    roster = load_class("Period 3")
    rename_student(roster, "grace_hopper", "Adm. Grace Hopper")
    remove_student(roster, "eileen_collins")
    save_class(roster)
    assert [(s.id, s.name) for s in load_class("Period 3").students] == [("grace_hopper", "Adm. Grace Hopper")]
    assert [c.name for c in list_classes()] == ["Period 3"]
    with pytest.raises(RosterError, match="No class named"):
        load_class("Period 4")


def test_photo_names_and_folders_map_to_students(tmp_path):
    for name in ("ada_lovelace.jpg", "ada_lovelace_2.jpg", "Alan Turing (2).png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("ignored")
    entries = find_photos(tmp_path)
    assert sorted((e.student_id, e.name) for e in entries) == [("ada_lovelace", "Ada Lovelace")] * 2 + [("alan_turing", "Alan Turing")]


def test_enroll_cli_exit_status_says_something_was_skipped(photo_folder):
    command = [sys.executable, "-m", "p2p_attendance", "enroll", str(photo_folder), "--class", "Period 3"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 3
    assert "skipped nobody.jpg: no face found" in run.stderr
    assert "2 students" in run.stdout
    listing = subprocess.run([sys.executable, "-m", "p2p_attendance", "classes"], capture_output=True, text=True, timeout=60)
    assert "Period 3 (2 students)" in listing.stdout and "Grace Hopper" in listing.stdout


def test_enroll_reports_each_photo_and_a_cancel_saves_nothing(photo_folder):
    from p2p_attendance.roster.enroll import EnrollCancelled

    seen = []
    result = enroll_folder(photo_folder, "Period 3", FaceEngine, progress=lambda done, total, photo: seen.append((done, total, photo)))
    assert [done for done, _, _ in seen] == list(range(1, 7)) and {total for _, total, _ in seen} == {6}
    assert {photo for _, _, photo in seen} == {"Eileen Collins/a.jpg", "Eileen Collins/b.png", "Pair/two.jpg", "broken.jpg", "grace_hopper.jpg", "nobody.jpg"}
    assert len(result.roster.students) == 2

    looked_at = []
    with pytest.raises(EnrollCancelled, match="Cancelled after 2 of 6 photos"):
        enroll_folder(photo_folder, "Period 4", FaceEngine, progress=lambda done, total, photo: looked_at.append(done), cancelled=lambda: len(looked_at) >= 2)
    assert looked_at == [1, 2]
    assert [c.name for c in list_classes()] == ["Period 3"]


def test_enroll_cli_prints_a_count_per_photo_and_ctrl_c_stops_cleanly(photo_folder):
    import signal
    import time

    command = [sys.executable, "-m", "p2p_attendance", "enroll", str(photo_folder), "--class", "Period 3"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert [line.split()[0] for line in run.stderr.splitlines() if line.startswith("  ") and "/" in line.split()[0]][:6] == [f"{n}/6" for n in range(1, 7)]

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([*command[:-1], "Period 4"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        first = process.stderr.readline()  # the first photo is done
        assert first.strip().startswith("1/6"), first
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    print(f"stopped {time.monotonic() - started:.1f} s after Ctrl-C")
    assert process.returncode == 130
    assert "stopped: Cancelled after" in rest and "the class was not changed" in rest
    assert "Traceback" not in rest
    assert [c.name for c in list_classes()] == ["Period 3"]


def test_add_samples_adds_new_faces_once_and_skips_broken_descriptors(tmp_path):
    """The review names an unknown face: roster/store.py adds the crops to the student's photos."""
    from p2p_attendance.roster.store import (
        ClassRoster,
        EnrolledPhoto,
        EnrolledStudent,
        FaceSample,
        add_samples,
    )

    enrolled = EnrolledPhoto("ada.jpg", "0" * 64, [0.0] * 128)
    save_class(ClassRoster("Maths", [EnrolledStudent("ada", "Ada", [enrolled])]), tmp_path)
    good = [FaceSample(f"from lecture.mp4 at 0:0{i}", f"crop {i}".encode(), [float(i)] * 128) for i in range(3)]
    broken = [FaceSample("nan", b"nan", [float("nan")] * 128), FaceSample("short", b"short", [0.1] * 12)]
    assert add_samples("Maths", "ada", good + broken, root=tmp_path) == 3
    assert add_samples("Maths", "ada", good, root=tmp_path) == 0  # the same crops again: nothing new
    assert add_samples("Maths", "nobody", good, root=tmp_path) == 0
    photos = load_class("Maths", tmp_path).student("ada").photos
    assert [p.file for p in photos] == ["ada.jpg", "from lecture.mp4 at 0:00", "from lecture.mp4 at 0:01", "from lecture.mp4 at 0:02"]
    assert photos[2].encoding == [1.0] * 128


def test_add_samples_saves_the_jobs_roster_when_the_class_is_gone_from_disk(tmp_path):
    from p2p_attendance.roster.store import (
        ClassRoster,
        EnrolledStudent,
        FaceSample,
        add_samples,
    )

    job_roster = ClassRoster("Deleted meanwhile", [EnrolledStudent("ada", "Ada", [])])
    assert add_samples("Deleted meanwhile", "ada", [FaceSample("x", b"x", [0.5] * 128)], fallback=job_roster, root=tmp_path) == 1
    assert len(load_class("Deleted meanwhile", tmp_path).student("ada").photos) == 1


def test_a_name_that_is_not_text_is_refused_where_it_is_typed(tmp_path):
    """The one rule for names (peertext): a lone surrogate or a control character in a class or
    student name is refused with one clear RosterError, before anything is looked at or saved."""
    def no_engine():
        raise AssertionError("no photo should be looked at")

    for bad, said in (("Bio\ud800", "not valid Unicode"), ("Bio\x1b[2J", "control or invisible")):
        with pytest.raises(RosterError, match=f"class name .*{said}"):
            enroll_folder(tmp_path, bad, no_engine)
    assert list_classes() == []
    roster = ClassRoster("Bio", [EnrolledStudent("ada", "Ada")])
    with pytest.raises(RosterError, match="student's name is not valid Unicode"):
        rename_student(roster, "ada", "Ada\udcff")
    assert roster.student("ada").name == "Ada"


def test_enroll_cli_refuses_a_class_name_that_is_not_utf8_with_one_message(tmp_path):
    (tmp_path / "photos").mkdir()
    run = subprocess.run([sys.executable, "-m", "p2p_attendance", "enroll", str(tmp_path / "photos"), "--class", b"Bio\xff"],
                         capture_output=True, text=True, errors="replace", timeout=120)
    assert run.returncode == 1, run.stderr
    assert "error: The class name is not valid Unicode" in run.stderr and "Traceback" not in run.stderr


def test_a_photo_whose_file_name_is_not_text_is_skipped_with_a_reason(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/ada_\xff.jpg", "wb") as handle:  # not UTF-8: a lone surrogate once decoded
        handle.write(b"x")
    result = enroll_folder(folder, "Bio", lambda: None)
    assert [problem.reason for problem in result.problems] == ["The photo's file name is not valid Unicode ('ada_?.jpg'): use another name"]
    assert load_class("Bio").students == []
