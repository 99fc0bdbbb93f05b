"""The lecture-hall composer (tools/hall.py): its truth is consistent and fixed by the seed, the
engine finds the faces it shows, and a whole job's statuses match the truth where it is clear.
Everything here needs ../shared/people (or P2P_ATTENDANCE_SHARED) and skips cleanly without it."""
from __future__ import annotations

import av
import numpy as np
import pytest

from p2p_attendance.tools.bench import SHARED_PEOPLE, face_owner

pytestmark = pytest.mark.skipif(not SHARED_PEOPLE.is_dir(), reason="../shared/people is not present")

SHORT_S = 3.0  # 90 frames: a few seconds to compose


def frame_at(path, index: int = 0) -> np.ndarray:
    with av.open(str(path)) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k == index:
                return frame.to_ndarray(format="rgb24")
    raise IndexError(index)


@pytest.fixture(scope="module")
def hall_one(tmp_path_factory, engine):
    from p2p_attendance.tools.hall import compose_hall

    path = tmp_path_factory.mktemp("hall") / "hall-1.mp4"
    return path, compose_hall(path, SHARED_PEOPLE, engine, seed=1, duration_s=SHORT_S)


def test_same_seed_same_truth_and_pixels_other_seed_other_seating(hall_one, tmp_path, engine):
    from p2p_attendance.tools.hall import compose_hall, plan_hall

    path, truth = hall_one
    again = compose_hall(tmp_path / "again.mp4", SHARED_PEOPLE, engine, seed=1, duration_s=SHORT_S)
    assert again.people == truth.people and again.frames == truth.frames and again.dim == truth.dim
    assert np.array_equal(frame_at(path), frame_at(tmp_path / "again.mp4"))
    other = plan_hall(SHARED_PEOPLE, engine, seed=2, duration_s=SHORT_S)
    seating = {p.id: p.seat for p in truth.people}
    assert {p.id: p.seat for p in other.people} != seating
    assert {p.id: p.role for p in other.people} != {p.id: p.role for p in truth.people}


def test_truth_is_consistent_with_the_plan(hall_one):
    from p2p_attendance.tools.hall import FRONT_FACE_PX, HALL_SIZE

    _, truth = hall_one
    assert len(truth.people) >= 30 and len(truth.frames) == round(SHORT_S * truth.fps)
    roles = [p.role for p in truth.people]
    for role in ("stranger", "never", "late", "early", "visitor", "all"):
        assert role in roles, role
    assert all(not p.enrolled for p in truth.people if p.role == "stranger")
    assert all(p.video_photo.stem != "1" for p in truth.people)  # the video never shows the enrollment photo
    seats = [p.seat for p in truth.people if p.seat is not None]
    assert len(seats) == len(set(seats))  # one person a seat
    by_id = {p.id: p for p in truth.people}
    widths = []
    for k, visible in enumerate(truth.frames):
        t = k / truth.fps
        for pid, (left, top, right, bottom) in visible.items():
            person = by_id[pid]
            assert person.in_room(t) and not person.looking_down(t), (pid, t)
            assert 0 <= left < right < HALL_SIZE[0] and 0 <= top < bottom < HALL_SIZE[1]
            widths.append(right - left)
        for person in truth.people:  # everyone in the room and not looking down is visible
            if person.in_room(t) and not person.looking_down(t):
                assert person.id in visible, (person.id, t)
    assert 20 <= min(widths) <= 50 and 100 <= max(widths) <= FRONT_FACE_PX * 1.2  # perspective


def test_expected_statuses_follow_the_plan(tmp_path, engine):
    """The truth's statuses under the attendance rule, on a 20 s plan rendered without pixels'
    cost mattering: everyone who sits through it is present, the never-came, the visitor and the
    late-comer of the last 15 % are absent."""
    from p2p_attendance.tools.hall import HallTruth, plan_hall

    plan = plan_hall(SHARED_PEOPLE, engine, seed=4, duration_s=20.0)
    # Visibility straight from the plan (no rendering): in the room and not looking down.
    frames = [{p.id: (0, 0, 1, 1) for p in plan.people if p.in_room(k / plan.fps) and not p.looking_down(k / plan.fps)}
              for k in range(20 * plan.fps)]
    truth = HallTruth(plan.seed, plan.duration_s, plan.fps, plan.size, plan.people, plan.dim, frames)
    expected = truth.expected(1.0)
    assert set(expected) == {p.id for p in plan.people if p.enrolled}
    for person in plan.students:
        e = expected[person.id]
        if person.role == "never":
            assert e["status"] == "absent" and e["frames"] == 0 and e["first"] is None
        elif person.role == "all" and not person.down:
            assert e["status"] == "present" and e["first"] == 0.0 and e["last"] == 19.0
        elif person.role == "visitor" or (person.role == "late" and person.start_s > 15):
            assert e["status"] == "absent" and e["frames"] >= 1
    assert truth.strangers_seen(1.0) == 3


def test_engine_finds_most_faces_of_a_hall_frame(hall_one, engine):
    path, truth = hall_one
    index = max(range(len(truth.frames)), key=lambda k: len(truth.frames[k]))  # the fullest frame
    visible = truth.frames[index]
    found = {face_owner(box, visible) for box, _ in engine.detect(frame_at(path, index))} - {None}
    assert len(visible) >= 15
    assert len(found) >= 0.8 * len(visible), f"{len(found)} of {len(visible)} visible faces found"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_job_statuses_match_the_truth_for_clearly_present_and_absent(tmp_path, engine):
    """A whole job (one local worker) on a 20 s hall: students who sat through it in view at least
    four windows in five are present, those who never came are absent."""
    from p2p_attendance.roster.enroll import enroll_folder
    from p2p_attendance.tools.bench import run_job
    from p2p_attendance.tools.hall import compose_hall

    truth = compose_hall(tmp_path / "hall.mp4", SHARED_PEOPLE, engine, seed=3, duration_s=20.0)
    roster = enroll_folder(truth.write_enrollment(tmp_path / "enroll"), "Hall", lambda: engine, root=tmp_path / "classes").roster
    run = run_job(tmp_path / "hall.mp4", roster, 1.0, workers=1, timeout_s=600)
    got = {s.id: s.status for s in run.report.students}
    expected = truth.expected(1.0)
    clear = {sid: e["status"] for sid, e in expected.items() if e["presence"] >= 0.8 or e["frames"] == 0}
    assert sum(s == "present" for s in clear.values()) >= 15 and sum(s == "absent" for s in clear.values()) >= 3
    wrong = {sid: (got.get(sid), want) for sid, want in clear.items() if got.get(sid) != want}
    assert not wrong, wrong
