"""tools/detectors.py: how detections are scored on halls (against the truth) and on real video
(against the faces the plain loop or two detectors find)."""
from p2p_attendance.tools.detectors import reference_faces, score_frame, spread

ANN, BOB, CY = (100, 100, 160, 160), (400, 100, 460, 160), (700, 100, 760, 160)


def test_a_box_on_a_visible_face_finds_it_once_and_a_box_elsewhere_is_stray():
    boxes = [(105, 98, 158, 162), (102, 104, 150, 150), (900, 500, 950, 550)]  # Ann twice, then the wall
    assert score_frame(boxes, [ANN, BOB]) == (1, 1)
    assert score_frame([], [ANN, BOB]) == (0, 0)


def test_reference_faces_are_the_plain_loops_and_those_two_detectors_agree_on():
    found = {
        "HOG upsample 1": [ANN],
        "CNN (MMOD) upsample 1": [(98, 96, 162, 166), (402, 102, 458, 158)],  # Ann again, and Bob
        "OpenCV Haar": [(405, 105, 455, 155), CY],  # Bob (agrees with the CNN), Cy (nobody agrees)
    }
    faces = reference_faces(found)
    assert faces == [ANN, (402, 102, 458, 158)]  # one box per face: Ann from the plain loop, Bob agreed on
    assert score_frame(found["OpenCV Haar"], faces) == (1, 1)  # Cy is unconfirmed


def test_frames_are_spread_over_the_video_and_bounded_by_it():
    assert spread(600, 4) == [75, 225, 375, 525]
    assert spread(3, 10) == [0, 1, 2]
