"""A batch's answer (compute/batch.BatchProcessor) on real faces that ship in pip packages."""
import cv2
import numpy as np

from p2p_attendance.compute.batch import BatchProcessor, JobParams, descriptors_at


def _frame_jpeg(face_image) -> bytes:
    """A 1280x720 grey room with the face pasted at (100, 200), as a JPEG (how frames travel)."""
    canvas = np.full((720, 1280, 3), 110, np.uint8)
    canvas[200 : 200 + face_image.shape[0], 100 : 100 + face_image.shape[1]] = face_image
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return data.tobytes()


def _roster_row(near: np.ndarray, far: np.ndarray, d_near: float, d_far: float) -> np.ndarray:
    """A roster descriptor d_near from `near` and d_far from `far` (in the plane of the two and a
    direction orthogonal to it)."""
    u = far - near
    delta = float(np.linalg.norm(u))
    u = u / delta
    along = (delta**2 + d_near**2 - d_far**2) / (2 * delta)
    w = np.random.default_rng(3).normal(size=128).astype(np.float32)
    w -= w.dot(u) * u
    w /= np.linalg.norm(w)
    return (near + along * u + np.sqrt(d_near**2 - along**2) * w).astype(np.float32)


def test_a_copied_descriptor_that_misses_the_tolerance_does_not_cost_the_frames_it_was_copied_into(sample_faces, engine):
    # A student out of focus at the batch's first frame (descriptor 0.70 from their photo), sharp
    # after. The finder encodes frame 0 and copies that descriptor to frames 1-3 (the face stays
    # put), encodes again at frame 4. The track is the student (median 0.575), but frames 1-3 carry
    # frame 0's 0.70: unnamed, where the plain loop, encoding each frame, names them.
    grace = sample_faces["grace"]
    grace = cv2.resize(grace, (300, 300 * grace.shape[0] // grace.shape[1]), interpolation=cv2.INTER_AREA)  # a ~107 px face
    payloads = [_frame_jpeg(cv2.GaussianBlur(grace, (0, 0), 3))] + [_frame_jpeg(grace)] * 7
    entries = [{"index": i, "time_s": float(i)} for i in range(8)]
    processor = BatchProcessor(engine)
    nobody = np.full((1, 128), 0.5, np.float32)
    processor.start_job(JobParams(["someone_else"], nobody, 0.6, engine.settings))
    first = processor.process(entries, payloads)
    rows = np.frombuffer(first.encodings, np.float32).reshape(-1, 128)
    assert [len(faces) for faces in first.faces] == [1] * 8
    assert all((rows[i] == rows[0]).all() for i in (1, 2, 3)) and not (rows[4] == rows[0]).all()  # copied, then fresh
    blurred, sharp = rows[0], rows[4]

    processor.start_job(JobParams(["grace"], _roster_row(sharp, blurred, 0.45, 0.70)[None], 0.6, engine.settings))
    out = processor.process(entries, payloads)
    assert [faces[0].student_id for faces in out.faces] == [None] + ["grace"] * 7
    assert abs(out.faces[0][0].distance - 0.70) < 0.01  # the out-of-focus frame stands on its own descriptor
    # Frames 1-3 carry a descriptor of their own now, the one the teacher's computer recomputes at the box.
    rows = np.frombuffer(out.encodings, np.float32).reshape(-1, 128)
    for i in (1, 2, 3):
        own = descriptors_at(engine, entries[i], payloads[i], None, [out.faces[i][0].box])[0]
        assert np.allclose(rows[i], own, atol=1e-5)
        assert abs(out.faces[i][0].distance - 0.45) < 0.05



def test_a_track_named_on_one_copied_descriptor_gets_a_second_look_before_it_names_its_frames(sample_faces, engine):
    # A stranger a shade within the tolerance of an absent student (0.58) at a batch's first frame;
    # the finder copies that descriptor to frames 1-3 (the face stays put). One draw would name 4
    # frames. The latest copy is encoded afresh (here the face is blurred there: 0.70), and the
    # track, now two draws with a median over the tolerance, is nobody.
    grace = sample_faces["grace"]
    grace = cv2.resize(grace, (300, 300 * grace.shape[0] // grace.shape[1]), interpolation=cv2.INTER_AREA)  # a ~107 px face
    payloads = [_frame_jpeg(grace)] * 3 + [_frame_jpeg(cv2.GaussianBlur(grace, (0, 0), 3))]
    entries = [{"index": i, "time_s": float(i)} for i in range(4)]
    processor = BatchProcessor(engine)
    processor.start_job(JobParams(["someone_else"], np.full((1, 128), 0.5, np.float32), 0.6, engine.settings))
    first = processor.process(entries, payloads)
    rows = np.frombuffer(first.encodings, np.float32).reshape(-1, 128)
    assert all((rows[i] == rows[0]).all() for i in (1, 2, 3))  # one descriptor, copied
    drawn, later = rows[0], descriptors_at(engine, entries[3], payloads[3], None, [first.faces[3][0].box])[0]

    processor.start_job(JobParams(["absent"], _roster_row(drawn, later, 0.58, 0.70)[None], 0.6, engine.settings))
    out = processor.process(entries, payloads)
    assert [faces[0].student_id for faces in out.faces] == [None] * 4  # before: "absent" in all 4
    rows = np.frombuffer(out.encodings, np.float32).reshape(-1, 128)
    assert np.allclose(rows[3], later, atol=1e-5)  # the teacher's computer recomputes the same at the box
    assert processor.finder.stats["fresh_for_name"] == 1


def test_a_named_descriptor_copied_within_the_slack_of_the_tolerance_gets_a_second_look(sample_faces, engine):
    # A 60 s hall (seed 5): a stranger 0.593-0.599 from a student who never came, two descriptors
    # each copied over 4 frames, was named for a whole batch. Neither is the track's only draw (the
    # second look above), but each is a close call: its latest copy is encoded afresh (here the
    # face is blurred there), and the track, now four draws with a median over the tolerance, is nobody.
    grace = sample_faces["grace"]
    grace = cv2.resize(grace, (300, 300 * grace.shape[0] // grace.shape[1]), interpolation=cv2.INTER_AREA)  # a ~107 px face
    brighter = cv2.convertScaleAbs(grace, alpha=1.1, beta=8)  # the same face a moment later: a second draw
    blurred, blurred_brighter = cv2.GaussianBlur(grace, (0, 0), 3), cv2.GaussianBlur(brighter, (0, 0), 3)
    payloads = [_frame_jpeg(image) for image in [grace] * 3 + [blurred] + [brighter] * 3 + [blurred_brighter]]
    entries = [{"index": i, "time_s": float(i)} for i in range(8)]
    processor = BatchProcessor(engine)
    processor.start_job(JobParams(["someone_else"], np.full((1, 128), 0.5, np.float32), 0.6, engine.settings))
    rows = np.frombuffer(processor.process(entries, payloads).encodings, np.float32).reshape(-1, 128)
    assert len(rows) == 8 and len({row.tobytes() for row in rows}) == 2  # two draws (frames 0 and 4), each copied
    boxes = [faces[0].box for faces in processor.process(entries, payloads).faces]
    later = [descriptors_at(engine, entries[i], payloads[i], None, [boxes[i]])[0] for i in (3, 7)]
    row = _roster_row((rows[0] + rows[4]) / 2, (later[0] + later[1]) / 2, 0.575, 0.72)
    near, far = [float(np.linalg.norm(rows[i] - row)) for i in (0, 4)], [float(np.linalg.norm(v - row)) for v in later]
    assert all(0.55 < d <= 0.6 for d in near) and all(d > 0.6 for d in far), (near, far)  # two close calls; fresh draws beyond

    processor.start_job(JobParams(["absent"], row[None], 0.6, engine.settings))
    out = processor.process(entries, payloads)
    assert [faces[0].student_id for faces in out.faces] == [None] * 8  # before: "absent" in all 8
    assert processor.finder.stats["fresh_for_name"] == 2
