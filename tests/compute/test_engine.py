"""The real face engine on real faces that ship inside pip packages."""
import cv2
import numpy as np

from p2p_attendance.compute.engine import DetectionSettings, FaceEngine, to_gray
from p2p_attendance.compute.matching import match_encodings, resolve_frame_conflicts


def test_astronaut_false_face_is_dropped_by_the_score_threshold(sample_faces, engine):
    lenient = FaceEngine(DetectionSettings(upsample=1, min_score=-0.5), descriptor="dlib")
    all_hits = lenient.detect(sample_faces["astronaut"])
    assert len(all_hits) >= 2, "dlib is known to find a false face on the suit"
    faces = engine.find_faces(sample_faces["astronaut"])
    assert len(faces) == 1
    left, top, right, bottom = faces[0].box
    assert 150 < left < 200 and 60 < top < 100 and right - left > 60  # her face, top left


def test_grey_search_finds_the_faces_the_colour_search_finds(sample_faces, engine):
    for image in sample_faces.values():
        colour = [box for box, _ in engine.detect(image)]
        grey = [box for box, _ in engine.detect(to_gray(image))]
        assert len(grey) == len(colour) >= 1
        for a, b in zip(sorted(colour), sorted(grey)):
            assert max(abs(x - y) for x, y in zip(a, b)) <= 12  # same face, box within a few pixels


def test_two_people_are_far_apart_and_one_person_matches_herself(sample_faces, engine):
    astronaut = engine.find_faces(sample_faces["astronaut"])[0].encoding
    grace = engine.find_faces(sample_faces["grace"])[0].encoding
    assert np.linalg.norm(astronaut - grace) > 0.6
    # The same photo, smaller and darker: still the same person.
    small = cv2.resize(sample_faces["grace"], None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    darker = (small * 0.6).astype(np.uint8)
    again = engine.find_faces(darker)
    assert len(again) == 1
    assert np.linalg.norm(again[0].encoding - grace) < 0.4


def test_fast_descriptor_matches_dlib_in_the_engine(sample_faces, engine):
    reference = FaceEngine(descriptor="dlib")
    assert engine.descriptor_name == "fast"
    for image in sample_faces.values():
        boxes = [box for box, _ in engine.detect(image)]
        assert np.abs(engine.encode(image, boxes) - reference.encode(image, boxes)).max() < 1e-3


def test_batch_api_returns_one_list_per_frame(sample_faces, engine):
    blank = np.full((240, 320, 3), 128, np.uint8)
    results = engine.process_frames([sample_faces["grace"], blank, sample_faces["astronaut"]])
    assert [len(r) for r in results] == [1, 0, 1]
    assert all(f.encoding.shape == (128,) and f.encoding.dtype == np.float32 for r in results for f in r)


def test_matching_uses_tolerance_and_keeps_one_match_per_student():
    roster = np.zeros((2, 128), np.float32)
    roster[1, 0] = 1.0
    probes = np.zeros((3, 128), np.float32)
    probes[0, 0] = 0.1  # close to a
    probes[1, 0] = 0.95  # close to b
    probes[2, 0] = 0.2  # also a, but farther than probe 0
    probes[2, 1] = 0.9  # ... and beyond tolerance from everyone
    matches = match_encodings(probes, roster, ["a", "b"], tolerance=0.6)
    assert [m[0] for m in matches] == ["a", "b", None]
    twins = resolve_frame_conflicts([("a", 0.3), ("a", 0.2), ("b", 0.5)])
    assert twins == [(None, 0.3), ("a", 0.2), ("b", 0.5)]
    assert match_encodings(probes, np.zeros((0, 128)), [], 0.6)[0] == (None, float("inf"))
