"""Identity per face track (compute/matching.match_batch) on synthetic descriptors with known distances."""
import numpy as np
from conftest import plane_at

from p2p_attendance.compute.matching import match_batch, match_batch_tracks, match_encodings, names_across_seam, resolve_frame_conflicts

BOX = (100, 100, 180, 180)


_at = plane_at


ROSTER = np.stack([_at(0.0, 0.0), _at(0.7, 0.0)])  # students a and b, 0.7 apart
IDS = ["a", "b"]
A_CLEARLY = _at(0.15, 0.30)  # a at 0.34, b at 0.62
NEARER_B = _at(0.374, 0.443)  # b at 0.55, a at 0.58: one frame where the nearest student is the wrong one
BETWEEN = _at(0.3354, 0.3708)  # a at 0.50, b at 0.52: no clear winner


def _frames(*points):
    return [[BOX] for _ in points], [p.reshape(1, 128) for p in points]


def test_one_frame_nearer_a_wrong_student_is_named_after_its_track():
    boxes, encodings = _frames(A_CLEARLY, A_CLEARLY, NEARER_B, A_CLEARLY)
    per_frame = match_encodings(NEARER_B, ROSTER, IDS, 0.6)
    assert per_frame[0][0] == "b" and abs(per_frame[0][1] - 0.55) < 0.01  # the trap: per frame, b is "seen"
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [frame[0][0] for frame in decided] == ["a", "a", "a", "a"]
    assert abs(decided[2][0][1] - 0.58) < 0.01  # the face's own distance to the student it names


def test_an_ambiguous_track_is_unknown_not_a_guess():
    boxes, encodings = _frames(BETWEEN, BETWEEN, BETWEEN)
    assert match_encodings(BETWEEN, ROSTER, IDS, 0.6)[0][0] == "a"  # per frame, a guess
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [frame[0][0] for frame in decided] == [None, None, None]
    assert abs(decided[0][0][1] - 0.50) < 0.01  # unknown faces carry the nearest distance, as before


def test_two_tracks_of_one_student_in_the_same_frames_keep_only_the_nearer():
    near, look_alike = _at(0.1, 0.0), _at(0.0, 0.3)  # both nearest to a, far from b
    boxes = [[BOX, (400, 100, 480, 180)]] * 3
    encodings = [np.stack([near, look_alike])] * 3
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [[sid for sid, _ in frame] for frame in decided] == [["a", None]] * 3


def test_faces_far_apart_in_the_frame_are_not_one_track():
    # The same descriptor at two places 10 face widths apart in consecutive frames: two tracks,
    # each decided on its own (here both a, in different frames, so both keep it).
    boxes = [[BOX], [(900, 100, 980, 180)]]
    decided = match_batch(boxes, [A_CLEARLY.reshape(1, 128)] * 2, ROSTER, IDS, 0.6)
    assert [frame[0][0] for frame in decided] == ["a", "a"]


def test_match_batch_agrees_with_the_frame_rule_on_clear_faces():
    rng = np.random.default_rng(5)
    roster = rng.normal(size=(6, 128)).astype(np.float32)
    roster /= np.linalg.norm(roster, axis=1, keepdims=True) / 0.5
    ids = ["s0", "s1", "s2", "s3", "s4", "s4"]  # s4 enrolled from two photos
    frames = [roster[[0, 2, 5]] + rng.normal(scale=0.01, size=(3, 128)).astype(np.float32) for _ in range(4)]
    boxes = [[(i * 200, 0, i * 200 + 80, 80) for i in range(3)]] * 4
    decided = match_batch(boxes, frames, roster, ids, 0.6)
    expected = [resolve_frame_conflicts(match_encodings(f, roster, ids, 0.6)) for f in frames]
    assert [[sid for sid, _ in fr] for fr in decided] == [[sid for sid, _ in fr] for fr in expected] == [["s0", "s2", "s4"]] * 4
    assert match_batch([[BOX]], [A_CLEARLY.reshape(1, 128)], np.zeros((0, 128)), [], 0.6) == [[(None, float("inf"))]]


# A face that turns in its seat: its descriptor moves 0.57 from the frontal one (more than
# LINK_DISTANCE), a at 0.56 and b at 0.58 - alone, too close a call to name anyone.
TURNED = np.zeros(128, np.float32)
TURNED[:3] = (0.34, 0.0, 0.45)


def test_a_face_that_turns_in_place_keeps_its_track_and_its_name():
    assert 0.45 < float(np.linalg.norm(TURNED - A_CLEARLY)) < 0.6
    boxes, encodings = _frames(A_CLEARLY, A_CLEARLY, TURNED, TURNED)
    alone = match_batch(boxes[2:], encodings[2:], ROSTER, IDS, 0.6)
    assert [frame[0][0] for frame in alone] == [None, None]  # the turned sightings on their own: unknown
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [frame[0][0] for frame in decided] == ["a", "a", "a", "a"]
    assert abs(decided[3][0][1] - 0.564) < 0.01  # each face still carries its own distance


def test_a_far_descriptor_elsewhere_does_not_join_the_track():
    # The same turned descriptor a face width away (no overlap): not the same place, so it needs
    # LINK_DISTANCE to join and stays a track of its own - unknown, not borrowed from its neighbour.
    boxes = [[BOX], [BOX], [(180, 100, 260, 180)], [(180, 100, 260, 180)]]
    encodings = [p.reshape(1, 128) for p in (A_CLEARLY, A_CLEARLY, TURNED, TURNED)]
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [frame[0][0] for frame in decided] == ["a", "a", None, None]


def test_a_student_turned_away_for_most_of_a_batch_keeps_the_frames_they_faced_the_camera():
    # Facing the camera (a at 0.34) for 3 frames, then turned in the same seat for 5 (a at 0.66,
    # past the tolerance and TRACK_SLACK). Deciding on the merged track (median 0.66) lost all 8.
    turned = _at(-0.15, 0.643)  # a at 0.66, b at 1.04
    boxes, encodings = _frames(A_CLEARLY, A_CLEARLY, A_CLEARLY, *[turned] * 5)
    assert 0.45 < float(np.linalg.norm(turned - A_CLEARLY)) < 0.6  # the same place links them
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [frame[0][0] for frame in decided] == ["a", "a", "a", None, None, None, None, None]


def test_a_face_hidden_for_several_frames_carries_the_name_decided_in_its_seat():
    # A student in the back row hidden by a neighbour for 3 sampled frames: seen at frame 0 too
    # close to call (a at 0.50, b at 0.52), back in the same seat at frame 4, clearly a. The gap
    # (4 frames) is beyond LINK_GAP, so they are two tracks; the seat still names the first.
    boxes = [[BOX], [], [], [], [BOX]]
    encodings = [BETWEEN.reshape(1, 128)] + [np.zeros((0, 128), np.float32)] * 3 + [A_CLEARLY.reshape(1, 128)]
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [[sid for sid, _ in frame] for frame in decided] == [["a"], [], [], [], ["a"]]
    assert abs(decided[0][0][1] - 0.50) < 0.01  # its own distance, within tolerance


def test_an_unclear_face_in_another_seat_after_a_gap_stays_unknown():
    # The same, but the unclear face sat two face widths away: not the seat a was decided in.
    boxes = [[(260, 100, 340, 180)], [], [], [], [BOX]]
    encodings = [BETWEEN.reshape(1, 128)] + [np.zeros((0, 128), np.float32)] * 3 + [A_CLEARLY.reshape(1, 128)]
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [[sid for sid, _ in frame] for frame in decided] == [[None], [], [], [], ["a"]]


def test_a_descriptor_copied_over_several_frames_counts_once_when_its_track_is_named():
    # The finder copies a face's descriptor to the next frames where the face stays (tracking.py):
    # one at 0.614 copied over 4 frames, then 4 fresh ones at 0.590-0.593. Counted per frame, the
    # median is 0.602 (over the tolerance) and the student goes unnamed for the whole batch.
    copied = _at(0.0, 0.614)
    fresh = [_at(0.0, 0.590 + 0.001 * k) for k in range(4)]
    boxes, encodings = _frames(copied, copied, copied, copied, *fresh)
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [frame[0][0] for frame in decided] == ["a"] * 8  # the copies too: 0.614 is within TRACK_SLACK


def test_a_face_of_a_decided_track_just_past_the_tolerance_keeps_the_name_further_does_not():
    # Seed 5's opencv4nodejs_rick: fresh descriptors at 0.614 and 0.606 in a track decided for him
    # (0.59 in six frames) went unnamed, frames the plain loop named. One at 0.66 is not him.
    sightings = [_at(0.0, 0.614), _at(0.0, 0.606), *[_at(0.0, 0.590 + 0.001 * k) for k in range(5)], _at(0.0, 0.66)]
    boxes, encodings = _frames(*sightings)
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [frame[0][0] for frame in decided] == ["a"] * 7 + [None]
    assert abs(decided[0][0][1] - 0.614) < 1e-3  # the face's own distance, past the tolerance


# In the plane: 0.58 from a and 0.61 from b (a's by a margin under MIN_MARGIN), and its mirror image.
NEARER_A_BY_LITTLE = _at(0.3245, 0.4807)
NEARER_B_BY_LITTLE = _at(0.3755, 0.4807)
B_CLEARLY = _at(0.7, 0.1)
SEAT_2 = (400, 100, 480, 180)


def test_a_rival_seen_on_another_face_in_the_same_frames_does_not_make_a_track_ambiguous():
    boxes = [[BOX, SEAT_2]] * 3
    alone = match_batch([[BOX]] * 3, [NEARER_A_BY_LITTLE.reshape(1, 128)] * 3, ROSTER, IDS, 0.6)
    assert [frame[0][0] for frame in alone] == [None] * 3  # a or b: too close a call on its own
    # b is in the next seat all along, surely: the face is not b, so it is a.
    decided = match_batch(boxes, [np.stack([p, B_CLEARLY]) for p in (NEARER_A_BY_LITTLE, NEARER_A_BY_LITTLE * 1.001, NEARER_A_BY_LITTLE * 0.999)],
                          ROSTER, IDS, 0.6)
    assert [[sid for sid, _ in frame] for frame in decided] == [["a", "b"]] * 3


def test_a_tracks_own_nearest_student_seen_elsewhere_does_not_make_it_the_next_nearest():
    # The face's nearest student, b, is surely in the next seat: the face is someone else, and a
    # (0.61, the next nearest) is not named by elimination (a stranger would be named so).
    boxes = [[BOX, SEAT_2]] * 3
    decided = match_batch(boxes, [np.stack([p, B_CLEARLY]) for p in (NEARER_B_BY_LITTLE, NEARER_B_BY_LITTLE * 1.001, NEARER_B_BY_LITTLE * 0.999)],
                          ROSTER, IDS, 0.6)
    assert [[sid for sid, _ in frame] for frame in decided] == [[None, "b"]] * 3


def test_of_two_faces_a_rival_elsewhere_leaves_to_one_student_the_nearer_takes_the_student():
    # b sits in a third seat all along; two faces each a or b by less than the margin: without b,
    # both would be a, and one student is one face in a frame: the nearer (0.50) is a, not the
    # first in track order (0.58).
    farther, nearer = _at(0.3331, 0.4748), BETWEEN  # a at 0.58 / 0.50, b at 0.60 / 0.52
    boxes = [[BOX, SEAT_2, (700, 100, 780, 180)]] * 3
    encodings = [np.stack([farther * k, nearer * k, B_CLEARLY]) for k in (1.0, 1.001, 0.999)]
    decided = match_batch(boxes, encodings, ROSTER, IDS, 0.6)
    assert [[sid for sid, _ in frame] for frame in decided] == [[None, "a", "b"]] * 3


def _link_tracks_one_pair_at_a_time(boxes, encodings, gap, link_distance, same_place_distance):
    """link_tracks as it was written before it compared a frame's faces with all live tracks at
    once: one (track, face) pair at a time. The reference the array version must equal."""
    from p2p_attendance.compute.matching import LINK_REACH, SAME_PLACE_IOU, iou

    same_place_distance = max(link_distance, same_place_distance)
    tracks, out = [], []
    for frame, (frame_boxes, frame_enc) in enumerate(zip(boxes, encodings)):
        pairs = []
        for t, (last, box, enc) in enumerate(tracks):
            if frame - last > gap:
                continue
            width = max(box[2] - box[0], 1)
            for i, b in enumerate(frame_boxes):
                shift = np.hypot((b[0] + b[2] - box[0] - box[2]) / 2, (b[1] + b[3] - box[1] - box[3]) / 2)
                if shift <= LINK_REACH * width:
                    d = float(np.linalg.norm(frame_enc[i] - enc))
                    if d <= link_distance or (d <= same_place_distance and iou(box, b) >= SAME_PLACE_IOU):
                        pairs.append((d, frame - last, t, i))
        ids, taken = [-1] * len(frame_boxes), set()
        for _, _, t, i in sorted(pairs):
            if ids[i] < 0 and t not in taken:
                ids[i] = t
                taken.add(t)
        for i in range(len(frame_boxes)):
            if ids[i] < 0:
                ids[i] = len(tracks)
                tracks.append((frame, frame_boxes[i], frame_enc[i]))
            else:
                tracks[ids[i]] = (frame, frame_boxes[i], frame_enc[i])
        out.append(ids)
    return out


def test_link_tracks_links_as_the_one_pair_at_a_time_rule_did():
    # Seats on a grid that sway, faces that vanish for a frame or more, descriptors that drift, and
    # neighbours close enough to compete for one track: the array version must give the same tracks.
    from p2p_attendance.compute.matching import link_tracks

    rng = np.random.default_rng(7)
    for trial in range(60):
        people = rng.integers(1, 30)
        seats = rng.integers(0, 600, size=(people, 2))
        sizes = rng.integers(30, 120, size=people)
        faces = rng.normal(size=(people, 128)).astype(np.float32) * rng.choice([0.03, 0.04, 0.06])  # people 0.5-1.0 apart: look-alikes too
        boxes, encodings = [], []
        for _ in range(rng.integers(1, 12)):
            here = np.flatnonzero(rng.random(people) < 0.8)
            jitter = rng.integers(-15, 16, size=(len(here), 2))
            boxes.append([(int(x), int(y), int(x + w), int(y + w)) for (x, y), w in zip(seats[here] + jitter, sizes[here])])
            encodings.append((faces[here] + rng.normal(scale=0.02, size=(len(here), 128))).astype(np.float32).reshape(-1, 128))
        gap, link, place = int(rng.integers(1, 5)), float(rng.choice([0.3, 0.45])), float(rng.choice([0.45, 0.6]))
        assert link_tracks(boxes, encodings, gap, link, place) == _link_tracks_one_pair_at_a_time(boxes, encodings, gap, link, place), trial


def test_a_seat_decided_in_one_batch_names_the_next_batchs_too_close_faces_across_the_seam():
    # Seed 5's lfw_bill_gates: decided at the end of one batch; in the next his two descriptors,
    # each copied over 4 frames, put his median just over the tolerance and he went unnamed.
    over = _at(0.0, 0.605)  # a at 0.605: alone, over the tolerance
    stranger = _at(-0.9, 0.0)  # nobody within the tolerance
    elsewhere = (400, 100, 480, 180)
    before = ([[BOX, elsewhere]] * 2, [np.stack([A_CLEARLY, stranger])] * 2, [["a", None]] * 2)  # per face: its own track's student
    alone, decided = match_batch_tracks([[BOX, elsewhere]] * 3, [np.stack([over, stranger])] * 3, ROSTER, IDS, 0.6)
    assert [[sid for sid, _ in frame] for frame in alone] == decided == [[None, None]] * 3  # the next batch on its own
    after = ([[BOX, elsewhere]] * 3, [np.stack([over, stranger])] * 3, decided)
    (for_before, for_after), taken_back = names_across_seam(before, after, ROSTER, IDS, 0.6)
    assert taken_back == ({}, {})
    assert for_before == {}  # its own names stand; nothing new there
    assert sorted(for_after) == [(0, 0), (1, 0), (2, 0)] and {sid for sid, _ in for_after.values()} == {"a"}  # the stranger: nobody
    assert abs(for_after[(0, 0)][1] - 0.605) < 1e-3  # each face's own distance
    # A student its own batch decided is never changed, nor given to a second face of the frame.
    assert names_across_seam(before, (after[0], after[1], [["b", None]] * 3), ROSTER, IDS, 0.6)[0][1] == {}
    assert names_across_seam(before, (after[0], after[1], [[None, "a"]] * 3), ROSTER, IDS, 0.6)[0][1] == {}


def test_a_seam_never_renames_a_face_whose_own_track_was_decided():
    # The next batch decided its seat for a; one of its faces is too far from a to carry the name
    # (0.67) and nearer b (0.56). b sat in the same seat in the batch before (a seat swap at the
    # seam): the two batches as one run call the whole seat b, but the face stays a's track's.
    turned = _at(0.45, 0.5)  # a at 0.67, b at 0.56; 0.36 from A_CLEARLY: the same track
    b_clearly = _at(0.55, 0.30)
    points = [A_CLEARLY, A_CLEARLY, A_CLEARLY, turned]
    own, decided = match_batch_tracks([[BOX]] * 4, [p.reshape(1, 128) for p in points], ROSTER, IDS, 0.6)
    assert [f[0][0] for f in own] == ["a", "a", "a", None] and [f[0] for f in decided] == ["a"] * 4
    before = ([[BOX]] * 3, [b_clearly.reshape(1, 128)] * 3, [["b"]] * 3)
    joint, _ = match_batch_tracks([[BOX]] * 7, [p.reshape(1, 128) for p in [b_clearly] * 3 + points], ROSTER, IDS, 0.6)
    assert joint[6][0][0] == "b"  # the trap: the two batches as one run give the turned face b
    assert names_across_seam(before, ([[BOX]] * 4, [p.reshape(1, 128) for p in points], decided), ROSTER, IDS, 0.6) == (({}, {}), ({}, {}))
    # (nor takes a's name back: the joint run puts a on no other face there, only a different student in the seat)


def test_a_seam_takes_back_a_name_whose_seat_sat_beside_that_student_in_the_other_batch():
    # Seed 8: a stranger sat unnamed beside a, who was decided on a face of his own; in the next
    # batch a had left and the stranger (a at 0.58, b far) was named a on his own evidence.
    stranger, elsewhere = _at(0.0, 0.58), (400, 100, 480, 180)
    before_boxes, before_enc = [[elsewhere, BOX]] * 3, [np.stack([A_CLEARLY, stranger])] * 3
    own, decided = match_batch_tracks(before_boxes, before_enc, ROSTER, IDS, 0.6)
    assert decided == [["a", None]] * 3  # one face a student: the nearer is a
    alone, after_decided = match_batch_tracks([[BOX]] * 3, [stranger.reshape(1, 128)] * 3, ROSTER, IDS, 0.6)
    assert [f[0][0] for f in alone] == ["a"] * 3  # the next batch on its own names the stranger a
    names, (back_before, back_after) = names_across_seam((before_boxes, before_enc, decided),
                                                         ([[BOX]] * 3, [stranger.reshape(1, 128)] * 3, after_decided), ROSTER, IDS, 0.6)
    assert names == ({}, {}) and back_before == {}  # a's own face keeps a
    assert back_after == {(0, 0): "a", (1, 0): "a", (2, 0): "a"}
    # a seen elsewhere, not beside the stranger's seat in the same frames, is no evidence against it
    apart = ([[elsewhere]] * 3, [A_CLEARLY.reshape(1, 128)] * 3, [["a"]] * 3)
    assert names_across_seam(apart, ([[BOX]] * 3, [stranger.reshape(1, 128)] * 3, after_decided), ROSTER, IDS, 0.6)[1] == ({}, {})


def test_tracks_on_one_draw_are_the_decided_tracks_whose_frames_share_one_descriptor():
    from p2p_attendance.compute.matching import tracks_on_one_draw

    a, b = plane_at(0.0, 0.0), plane_at(0.1, 0.0)
    seat, other = (100, 100, 160, 160), (400, 100, 460, 160)
    boxes = [[seat, other]] * 3
    copied = [np.stack([a, b]), np.stack([a, b + 0.01]), np.stack([a, b + 0.02])]  # seat: one descriptor; other: three
    names = [["ann", "bob"]] * 3
    assert tracks_on_one_draw(boxes, copied, names) == [(2, 0)]  # the seat's latest copy
    assert tracks_on_one_draw(boxes, copied, [[None, "bob"]] * 3) == []  # undecided: nothing to look at again
    assert tracks_on_one_draw(boxes[:1], copied[:1], names[:1]) == []  # one frame: no copy
