"""Batch face finding (compute/tracking.py) against the plain search, on real faces that ship in pip packages."""
import cv2
import numpy as np

from p2p_attendance.compute.tracking import BatchFaceFinder


def _face(image, width):
    return cv2.resize(image, (width, width * image.shape[0] // image.shape[1]), interpolation=cv2.INTER_AREA)


def _frame(*placed):
    """A 1280x720 grey room with each (image, x, y) pasted in."""
    canvas = np.full((720, 1280, 3), 110, np.uint8)
    for image, x, y in placed:
        canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
    return canvas


def _found_at(faces, x, y, w, h):
    return any(x <= (f.box[0] + f.box[2]) / 2 <= x + w and y <= (f.box[1] + f.box[3]) / 2 <= y + h for f in faces)


def _find_recording_searches(engine, frames):
    """The batch's faces, and the (height, width) of every image the finder searched, in order."""
    searched = []
    detect = engine.detect

    def recording_detect(image, upsample=None, min_score=None):
        searched.append(image.shape[:2])
        return detect(image, upsample, min_score)

    engine.detect = recording_detect
    try:
        return BatchFaceFinder(engine).find_batch(frames), searched
    finally:
        engine.detect = detect


def test_a_small_face_hidden_for_one_frame_is_found_when_it_comes_back(sample_faces, engine):
    grace = _face(sample_faces["grace"], 300)  # a ~110 px face
    astronaut = _face(sample_faces["astronaut"], 300)  # a ~53 px face: only the upsampled search finds it
    both = _frame((grace, 100, 200), (astronaut, 800, 200))
    looking_down = _frame((grace, 100, 200))
    frames = [both, looking_down, both]  # positions 0 (whole-frame) and 1, 2 (searched near known faces)
    plain = [engine.detect(f) for f in frames]
    assert [len(p) for p in plain] == [2, 1, 2]
    found = BatchFaceFinder(engine).find_batch(frames)
    assert [len(f) for f in found] == [2, 1, 2]
    assert _found_at(found[2], 800, 200, 300, 300)


def test_a_large_face_that_arrives_between_whole_frame_searches_is_found(sample_faces, engine):
    grace = _face(sample_faces["grace"], 300)
    astronaut = _face(sample_faces["astronaut"], 500)  # a ~88 px face
    frames = [_frame((grace, 100, 200)), _frame((grace, 100, 200), (astronaut, 700, 150))]
    assert [len(engine.detect(f)) for f in frames] == [1, 2]
    found = BatchFaceFinder(engine).find_batch(frames)
    assert [len(f) for f in found] == [1, 2]
    assert _found_at(found[1], 700, 150, 500, 500)


def test_one_face_boxed_at_two_sizes_is_one_face():
    from p2p_attendance.compute.tracking import iou, same_face

    small, large = (100, 100, 140, 140), (90, 90, 150, 150)  # searches at two scales, one face
    assert iou(small, large) < 0.5
    assert same_face(small, large) and same_face(large, small)
    assert not same_face(small, (150, 100, 190, 140))  # the neighbour in the next seat


def test_a_face_the_whole_frame_sweep_finds_is_not_searched_again_in_a_crop(sample_faces, engine):
    grace = _face(sample_faces["grace"], 300)  # a ~110 px face: the upsample-0 sweep finds it
    astronaut = _face(sample_faces["astronaut"], 300)  # a ~53 px face: only a crop searched upsampled finds it
    frame = _frame((grace, 100, 200), (astronaut, 800, 200))
    found, searched = _find_recording_searches(engine, [frame, frame])
    assert [len(f) for f in found] == [2, 2]
    assert _found_at(found[1], 100, 200, 300, 300) and _found_at(found[1], 800, 200, 300, 300)
    crops = [shape for shape in searched[1:] if shape != frame.shape[:2]]  # frame 1's searches
    assert len(crops) == 1 and crops[0][0] < 400  # the small face's crop only, not the large one's


def test_a_small_face_hidden_at_a_whole_frame_search_is_found_in_the_frames_before_the_next(sample_faces, engine):
    grace = _face(sample_faces["grace"], 300)  # a ~110 px face
    small_grace = _face(sample_faces["grace"], 150)  # a ~55 px face all along: whole-frame searches stay upsampled
    astronaut = _face(sample_faces["astronaut"], 300)  # a ~53 px face: only an upsampled search finds it
    hidden = _frame((grace, 100, 200), (small_grace, 500, 250))
    seen = _frame((grace, 100, 200), (small_grace, 500, 250), (astronaut, 800, 200))
    frames = [hidden, seen, seen, seen]  # whole-frame searches at 0 and 3, crops and the sweep at 1 and 2
    assert [len(engine.detect(f)) for f in frames] == [2, 3, 3, 3]
    found = BatchFaceFinder(engine).find_batch(frames)
    assert [len(f) for f in found] == [2, 3, 3, 3]
    assert all(_found_at(f, 800, 200, 300, 300) for f in found[1:])


def test_a_small_face_seen_only_between_whole_frame_searches_is_found_at_a_seat_the_batch_came_with(sample_faces, engine):
    # Seed 5's lfw_eduard_shevardnadze: looking down at the whole-frame searches (positions 0 and
    # 3), up at 1 and 2; no face of the batch is near his seat to search around.
    grace = _face(sample_faces["grace"], 150)  # a ~55 px face all along: whole-frame searches stay upsampled
    astronaut = _face(sample_faces["astronaut"], 300)  # a ~53 px face: only an upsampled search finds it
    hidden, seen = _frame((grace, 100, 250)), _frame((grace, 100, 250), (astronaut, 800, 200))
    frames = [hidden, seen, seen, hidden]
    assert [len(engine.detect(f)) for f in frames] == [1, 2, 2, 1]  # the plain loop sees him at 1 and 2
    assert [len(f) for f in BatchFaceFinder(engine).find_batch(frames)] == [1, 1, 1, 1]  # nowhere to look
    [seat] = [box for box, _ in engine.detect(seen) if box[0] > 700]  # where he sat earlier in the lecture
    found = [faces for _, faces in BatchFaceFinder(engine).iter_batch(frames, seats=[seat])]
    assert [len(f) for f in found] == [1, 2, 2, 1]
    assert _found_at(found[1], 800, 200, 300, 300) and _found_at(found[2], 800, 200, 300, 300)


def test_seats_are_the_latest_box_of_each_place_faces_were_seen_the_longest_unseen_forgotten_first():
    from p2p_attendance.compute.tracking import remember_seats

    seats = remember_seats([], [[(100, 100, 150, 150), (400, 100, 450, 150)]], limit=3)
    seats = remember_seats(seats, [[(105, 102, 155, 152)], [(106, 103, 156, 153)]], limit=3)  # the first student swayed
    assert seats == [(400, 100, 450, 150), (106, 103, 156, 153)]
    seats = remember_seats(seats, [[(700, 100, 750, 150), (900, 100, 950, 150)]], limit=3)
    assert seats == [(106, 103, 156, 153), (700, 100, 750, 150), (900, 100, 950, 150)]  # (400, ...) longest unseen
    # Only face-shaped boxes: a strip the frame's height would make a crop the frame's height.
    assert remember_seats([], [[(10, 0, 70, 1080), (10, 10, 13, 13), (-5, 0, 55, 60)]], limit=3) == []


def test_same_face_matrix_is_same_face_for_every_pair():
    from p2p_attendance.compute.tracking import same_face, same_face_matrix

    rng = np.random.default_rng(3)
    corners = rng.integers(0, 300, size=(60, 2))
    boxes = [(int(x), int(y), int(x + w), int(y + w)) for (x, y), w in zip(corners, rng.integers(10, 120, size=60))]
    matrix = same_face_matrix(boxes[:30], boxes[30:])
    assert matrix.any() and not matrix.all()
    assert matrix.tolist() == [[same_face(a, b) for b in boxes[30:]] for a in boxes[:30]]


def test_a_batch_larger_than_the_backfill_budget_is_given_out_before_its_last_frame_is_read(engine, monkeypatch):
    from p2p_attendance.compute import tracking

    frames = [np.full((240, 320, 3), 110, np.uint8) for _ in range(6)]
    monkeypatch.setattr(tracking, "BACKFILL_HELD_BYTES", 2 * frames[0].nbytes)  # room for two frames
    read = []

    def reading():
        for frame in frames:
            read.append(frame)
            yield frame

    batch = BatchFaceFinder(engine).iter_batch(reading())
    next(batch)
    assert len(read) == 3  # the first frame went out once a third was held
    assert len(list(batch)) == 5


def _dimmed(image, contrast):
    return (110 + (image.astype(np.float32) - 110) * contrast).clip(0, 255).astype(np.uint8)


def test_a_weak_detection_of_a_face_the_batch_finds_sure_is_kept_as_the_plain_loop_keeps_it(sample_faces, engine):
    grace = _face(sample_faces["grace"], 150)  # a ~55 px back-row face
    sure, faint = _frame((grace, 100, 200)), _frame((_dimmed(grace, 0.07), 100, 200))  # the lights dim
    weak = _Lenient(engine).detect(faint)  # dlib's own threshold, the plain loop's
    assert len(weak) == 1 and 0.0 <= weak[0][1] < engine.settings.min_score
    found = BatchFaceFinder(engine).find_batch([sure, faint, faint])
    assert [len(f) for f in found] == [1, 1, 1]
    assert all(_found_at(f, 100, 200, 150, 200) for f in found)


def test_a_weak_detection_the_batch_never_finds_sure_is_dropped(sample_faces, engine):
    frame = _frame((sample_faces["astronaut"], 300, 100))  # dlib's well-known false face on her suit scores ~0.1
    lenient = BatchFaceFinder(engine)
    lenient.engine = _Lenient(engine)  # the same searches, every detection above dlib's threshold taken as sure
    assert any(len(f) == 2 and min(face.score for face in f) < engine.settings.min_score for f in lenient.find_batch([frame] * 4))
    found = BatchFaceFinder(engine).find_batch([frame] * 4)
    assert [len(f) for f in found] == [1, 1, 1, 1]
    assert all(_found_at(f, 450, 140, 120, 120) for f in found)  # her face, at the photo's top left


def test_a_weak_detection_at_a_seat_a_face_was_sure_in_earlier_is_kept(sample_faces, engine):
    # Seed 13's lfw_christina_aguilera: a 40 px back-row face scoring 0.2-0.29 in every frame of a
    # batch (JPEG), sure in the batch before, was dropped for 4 frames the plain loop named her in.
    grace = _face(sample_faces["grace"], 150)
    astronaut = sample_faces["astronaut"]  # a sure face: the batch's frames are searched around it
    seat = engine.detect(_frame((grace, 100, 200)))[0][0]  # where the requester saw Grace, sure, in an earlier batch
    faint = _frame((_dimmed(grace, 0.06), 100, 200), (astronaut, 600, 100))  # the lights dim
    found = [faces for _, faces in BatchFaceFinder(engine).iter_batch([faint] * 4, seats=[seat])]
    assert [len(f) for f in found] == [2, 2, 2, 2] and all(_found_at(f, 100, 200, 150, 200) for f in found)
    assert all(min(face.score for face in f) < engine.settings.min_score for f in found)  # weak in every frame
    # Without the seat nothing sure was ever there (as on her suit: the test above): the astronaut only.
    assert [len(f) for f in BatchFaceFinder(engine).find_batch([faint] * 4)] == [1, 1, 1, 1]


class _Lenient:
    """The engine with min_score at dlib's own threshold."""

    def __init__(self, engine):
        from p2p_attendance.compute.engine import DetectionSettings

        self._engine = engine
        self.settings = DetectionSettings(engine.settings.upsample, 0.0)

    def detect(self, image, upsample=None, min_score=None):
        settings = self._engine.settings
        self._engine.settings = self.settings
        try:
            return self._engine.detect(image, upsample)
        finally:
            self._engine.settings = settings

    def encode(self, rgb, boxes):
        return self._engine.encode(rgb, boxes)


class _OneSureFaceAndOneScoringAboutZero:
    """A stand-in engine: a sure 100 px face in every whole frame searched, and where asked for weak
    ones (the finder's floor) a 20 px detection scoring 0.05, which the batch never confirms."""

    def __init__(self, weak: bool):
        self.weak = weak
        self.settings = type("Settings", (), {"min_score": 0.3, "upsample": 1})()
        self.searches: list[tuple[tuple[int, int], int | None]] = []

    def detect(self, image, upsample=None, min_score=None):
        self.searches.append((image.shape[:2], upsample))
        found = [((300, 300, 400, 400), 1.0)] if image.shape[0] == 720 else []
        if self.weak and image.shape[0] == 720 and upsample is None:
            found.append(((10, 10, 30, 30), 0.05))
        floor = self.settings.min_score if min_score is None else min_score
        return [(box, score) for box, score in found if score >= floor]

    def encode(self, rgb, boxes):
        return np.full((len(boxes), 128), 0.05, np.float32)


def test_a_weak_detection_the_batch_drops_does_not_change_how_the_batch_is_searched():
    """Whether dlib scores a speck 0.05 or -0.05 is a machine's last bit: it must not change the
    other searches (honest peers' answers must agree), nor cost upsampled whole-frame searches."""
    plans, answers = [], []
    for weak in (False, True):
        engine = _OneSureFaceAndOneScoringAboutZero(weak)
        answers.append([[face.box for face in faces] for faces in BatchFaceFinder(engine).find_batch([np.zeros((720, 1280, 3), np.uint8)] * 8)])
        plans.append([shape for shape, upsample in engine.searches if upsample is None and shape == (720, 1280)])
    assert answers[0] == answers[1]  # before: the sure face went missing from frames 3-7
    assert len(plans[1]) == len(plans[0])  # before: 3 whole-frame searches at full size instead of 1


def test_a_crop_around_a_known_face_is_small_and_still_finds_it_after_it_moves(sample_faces, engine):
    grace = _face(sample_faces["grace"], 300)  # a ~110 px face: the sweep's
    astronaut = _face(sample_faces["astronaut"], 300)  # a ~53 px face: searched in a crop between whole-frame searches
    frames = [_frame((grace, 100, 200), (astronaut, 800, 200)), _frame((grace, 100, 200), (astronaut, 818, 210))]  # moved a third of its width
    found, searched = _find_recording_searches(engine, frames)
    assert _found_at(found[1], 818, 210, 300, 300)
    width = max(f.box[2] - f.box[0] for f in found[0] if _found_at([f], 800, 200, 300, 300))
    crops = [shape for shape in searched[1:] if shape != frames[0].shape[:2]]
    assert len(crops) == 1
    # Searched pixels grow with the square of the margin: 1.5 face widths each side searched 16
    # times the face's box, and found no face that 0.75 (6 times) missed on the halls (docs/benchmarks.md).
    assert max(crops[0]) <= 2.5 * width + 2


class _GreySearchMissesOneFrame:
    """A stand-in engine: one face, a bright square, found in any image holding it, except that a
    search on grey levels of one frame (marked by its top-left block) misses it, as dlib's grey
    search missed a 103 px face on a hall that the plain loop's colour search found."""

    def __init__(self, missed: int):
        self.settings = type("Settings", (), {"min_score": 0.3, "upsample": 1})()
        self.mark = 10 * missed

    def detect(self, image, upsample=None, min_score=None):
        if image.ndim == 2 and int(image[5, 5]) == self.mark:
            return []
        grey = image if image.ndim == 2 else image[..., 0]
        ys, xs = np.nonzero(grey > 200)
        if len(xs) == 0:
            return []
        return [((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), 1.0)]

    def encode(self, rgb, boxes):
        return np.full((len(boxes), 128), 0.05, np.float32)


def _marked_frames(count):
    frames = []
    for k in range(count):
        frame = np.full((720, 1280, 3), 110, np.uint8)
        frame[:12, :12] = 10 * k
        frame[300:400, 600:700] = 255  # a 100 px face: the grey sweep's between whole searches, never a crop's
        frames.append(frame)
    return frames


def test_a_face_the_grey_whole_frame_search_missed_is_filled_back_from_the_next_frame():
    # Whole-frame searches at 0 and 3 (missed there), crops and the sweep at 1 and 2; at 4 a
    # whole-frame search again (nothing was found at 3 to search around).
    found = BatchFaceFinder(_GreySearchMissesOneFrame(3)).find_batch(_marked_frames(5))
    assert [len(f) for f in found] == [1, 1, 1, 1, 1]  # before: frame 3 had none
    assert _found_at(found[3], 590, 290, 120, 120)


def test_a_face_the_grey_sweep_missed_is_filled_back_in_a_colour_crop():
    # Frame 2 is searched in crops (none: the face is left to the sweep) and the grey sweep, which
    # misses it; frame 3's whole-frame search finds it.
    found = BatchFaceFinder(_GreySearchMissesOneFrame(2)).find_batch(_marked_frames(4))
    assert [len(f) for f in found] == [1, 1, 1, 1]  # before: frame 2 had none
    assert _found_at(found[2], 590, 290, 120, 120)
