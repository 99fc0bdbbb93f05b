"""attendance/evidence.py and the one unknown-face grouping (attendance/clustering.py): pure, no sockets."""
import threading

import numpy as np
from conftest import feed, unknown_frames

from p2p_attendance.attendance.clustering import group_unknown_faces
from p2p_attendance.attendance.evidence import (
    DESCRIPTORS_PER_STUDENT,
    MAX_UNKNOWN_EVIDENCE,
    EvidenceKeeper,
    unknown_people,
    with_crops,
)
from p2p_attendance.attendance.model import Face
from p2p_attendance.attendance.tally import tally


def test_student_evidence_is_the_best_match_in_each_part_of_the_lecture():
    keeper = EvidenceKeeper(duration_s=60.0)  # six parts of 10 s
    for t in range(60):
        keeper.keep(Face((0, 0, 1, 1), "ada", 0.3 + (t % 10) / 100), t, 0, float(t), b"crop", np.zeros(128), b"p")
    kept = keeper.snapshot().of_student("ada")
    assert [e.time_s for e in kept] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]  # the closest (t % 10 == 0) of each part
    assert all(e.encoding is None for e in kept)  # a known face's encoding is settled: not kept


def test_a_student_keeps_a_few_descriptors_the_closest_match_in_each_part_of_the_lecture():
    keeper = EvidenceKeeper(duration_s=80.0)  # eight parts of 10 s
    for t in range(90):  # a video a little longer than it said: still at most eight
        keeper.keep_descriptor("ada", float(t), np.full(128, t, np.float32), 0.3 + (t % 10) / 100, tolerance=0.6)
    keeper.keep_descriptor("ada", 5.0, np.full(128, -1, np.float32), 0.65, tolerance=0.6)  # beyond the tolerance: not confident
    keeper.keep_descriptor("ada", 5.0, np.full(128, np.nan, np.float32), 0.1, tolerance=0.6)  # not a descriptor
    keeper.keep_descriptor("ada", 5.0, np.zeros(64, np.float32), 0.1, tolerance=0.6)
    kept = keeper.snapshot().descriptors["ada"]
    assert kept.shape == (DESCRIPTORS_PER_STUDENT, 128)
    assert list(kept[:, 0]) == [0, 10, 20, 30, 40, 50, 60, 70]  # the closest (t % 10 == 0) of each part
    assert not kept.flags.writeable  # shared by every reader of the snapshot


def test_a_snapshot_never_changes_after_it_was_taken():
    keeper = EvidenceKeeper(duration_s=60.0)
    keeper.keep(Face((0, 0, 1, 1), "ada", 0.5), 0, 0, 1.0, b"a", np.zeros(128), b"liar")
    keeper.keep(Face((0, 0, 1, 1), None, 0.9), 0, 1, 1.0, b"u", np.ones(128), b"liar")
    before = keeper.snapshot()
    keeper.keep(Face((0, 0, 1, 1), "ada", 0.2), 1, 0, 2.0, b"b", np.zeros(128), b"honest")
    keeper.keep_descriptor("ada", 2.0, np.ones(128), 0.2, tolerance=0.6)
    keeper.drop_peers([b"liar"])
    after = keeper.snapshot()
    assert [e.jpeg for e in before.of_student("ada")] == [b"a"] and [e.jpeg for e in before.unknown] == [b"u"]
    assert [e.jpeg for e in after.of_student("ada")] == [b"b"] and after.unknown == ()
    assert "ada" not in before.descriptors and after.descriptors["ada"].shape == (1, 128)


def test_unknown_crops_are_bounded_and_spread_over_the_lecture():
    keeper = EvidenceKeeper(duration_s=3000.0)
    for t in range(3000):  # a crowd of strangers in every second
        for position in range(3):
            keeper.keep(Face((0, 0, 1, 1), None, 0.9), t, position, float(t), b"c", np.zeros(128), b"p")
    unknown = keeper.snapshot().unknown
    assert len(unknown) == MAX_UNKNOWN_EVIDENCE
    assert max(e.time_s for e in unknown) >= 2900  # a stranger who comes late still has crops


def test_snapshots_can_be_read_while_the_requester_thread_feeds_the_keeper():
    keeper = EvidenceKeeper(duration_s=600.0)
    stop = threading.Event()

    def requester():
        for t in range(20_000):
            keeper.keep(Face((0, 0, 1, 1), f"s{t % 40}", (t * 7 % 100) / 100), t, 0, float(t % 600), b"c", np.zeros(128), b"p")
            if t % 1000 == 0:
                keeper.drop_peers([b"nobody"])
        stop.set()

    thread = threading.Thread(target=requester)
    thread.start()
    reads = 0
    while not stop.is_set() and reads < 100_000:
        snap = keeper.snapshot()
        assert all(list(kept) == sorted(kept, key=lambda e: e.time_s) for kept in snap.students.values())
        reads += 1
    thread.join(30)
    assert len(keeper.snapshot().students) == 40


def test_one_grouping_does_not_depend_on_the_order_frames_arrived_in():
    frames = unknown_frames({1: range(20), 2: range(30, 40), 3: [50]})  # stranger 3: a fluke, once
    groups = group_unknown_faces(frames)
    assert [g.label for g in groups] == ["Unknown 1", "Unknown 2"]
    assert groups[0].faces == tuple((i, 0) for i in range(20)) and groups[1].faces == tuple((i, 0) for i in range(30, 40))
    assert group_unknown_faces(list(reversed(frames))) == groups


def test_the_reports_unknown_people_are_the_groups_the_crops_are_shown_for():
    """The tally's unknown people and unknown_people (what the Take strip runs) are the same groups,
    even when crops were kept of only some of the faces."""
    frames = unknown_frames({1: range(12), 2: range(5, 30), 3: range(40, 44)})
    keeper = EvidenceKeeper(duration_s=60.0)
    feed(keeper, frames[::2])  # crops of every other frame only
    shown = unknown_people(frames, keeper.snapshot())
    _, report_unknowns, _, _ = tally(frames, [], 60.0)
    assert [p.label for p in shown] == [u.label for u in report_unknowns] == ["Unknown 1", "Unknown 2", "Unknown 3"]
    assert [len(p.group.faces) for p in shown] == [u.frames_seen for u in report_unknowns] == [12, 25, 4]
    assert [(p.group.times[0], p.group.times[-1]) for p in shown] == [(u.first_seen_s, u.last_seen_s) for u in report_unknowns]
    for p in shown:  # each crop shown under a person is one of that person's faces
        assert p.crops and all(e.face in p.group.faces for e in p.crops)
    assert with_crops(group_unknown_faces(frames), keeper.snapshot())[1].crops == shown[1].crops


def test_the_strip_groups_with_the_students_kept_descriptors_as_the_report_does():
    """unknown_people (the Take strip) uses the snapshot's kept descriptors: a student whose matched
    faces carry no descriptor (as the job stores them) is not shown as an unknown person."""
    from conftest import near, person

    from p2p_attendance.attendance.model import FrameResult

    dee, stranger = person(15), person(16)
    away = (dee + 0.35 * person(17)) / np.linalg.norm(dee + 0.35 * person(17))
    frames = []
    for t in range(30):
        faces = [Face((1200, 100, 1260, 160), None, 0.8)]
        encs = [tuple(map(float, near(stranger, 900 + t)))]
        if t < 15:
            faces.append(Face((0, 100, 60, 160), "dee", 0.3))
            encs.append(None)  # the job keeps no descriptor with a matched face
        else:
            faces.append(Face((600, 100, 660, 160), None, 0.7))
            encs.append(tuple(map(float, near(away, 800 + t))))
        frames.append(FrameResult(t, float(t), tuple(faces), tuple(encs)))
    keeper = EvidenceKeeper(duration_s=30.0)
    feed(keeper, [FrameResult(f.index, f.time_s, f.faces[:1], f.encodings[:1]) for f in frames])  # the stranger's crops
    assert len(unknown_people(frames, keeper.snapshot())) == 2  # Dee split off: nothing to compare her faces with
    for t in range(15):
        keeper.keep_descriptor("dee", float(t), near(dee, 850 + t), 0.3, tolerance=0.6)
    snapshot = keeper.snapshot()
    shown = unknown_people(frames, snapshot)
    assert [p.group for p in shown] == list(group_unknown_faces(frames, descriptors=snapshot.descriptors))
    assert len(shown) == 1 and all(position == 0 for _, position in shown[0].group.faces)
