"""Cheaper face finding for a run of consecutive sampled frames (one batch).

Two levers, both exact for people who sit still, which is what students do:
- Adaptive detection scale. The first frame of a batch is searched at full sensitivity (the
  user's upsample: faces down to ~40 px). The rest are searched on a copy scaled so the smallest
  face found is just above the HOG detector's 80 px window: a class filmed with 130 px faces is
  searched at 0.7x (an eighth of the pixels of the upsampled search, measured 3.7x faster);
  with 55 px back-row faces present every frame keeps the full search. A newly arrived face smaller than those seen is found at the next batch's
  first frame (a few seconds later), which a presence rule over one-minute windows absorbs.
- Search near known faces. Between whole-frame searches (every `search_every` frames) a frame is
  searched around the faces seen in the batch so far (last frame's, and those lost since, where
  they were last seen), plus a whole-frame search for faces above the HOG window (upsample 0):
  together these keep the plain loop's sightings of people who look down, look up or arrive
  (docs/benchmarks.md, issue 15). Faces large enough for the whole-frame search are left to it,
  not searched again in a crop on the way forward (the backward fill below may: the sweep is grey).
- Seats. A batch may come with the boxes where faces were seen so far in the job (the
  requester's seats, remember_seats): they are searched like faces lost earlier in the batch. A
  student looking down at every whole-frame search and up between them is otherwise found only
  where a crop happens to look (seed 5's lfw_eduard_shevardnadze, seed 6's lfw_john_snow: back for
  2 frames between two whole-frame searches that found them hidden).
- Backward fill. After the batch's last frame, the frames are walked back from the last to the
  first: a face of frame p+1 with no face at frame p is searched for in a colour crop around its
  box at frame p (where p's own colour crops did not already look), and what is found is encoded.
  A small face hidden at a whole-frame search and seen in the frames after it is otherwise found
  only at the next whole-frame search, and a face the grey whole-frame searches missed only where
  a crop looks. The batch's
  decoded frames are held for it: at most BACKFILL_HELD_BYTES (eight 1080p RGB frames, 50 MB;
  compute/limits.py); frames beyond that are given out unfilled.
- Weak detections confirmed by the batch. Searches keep detections down to dlib's own threshold
  (WEAK_FLOOR, the plain face_recognition loop's); one scoring under the job's min_score is kept
  where the batch also found that face scoring above it, or at a seat (a face seen there earlier in
  the job). A back-row face scores 0-0.3 in most frames and 0.3-0.7 in some; a pattern on a suit
  scores ~0.1 in every frame.
Both recover sightings the plain loop has (docs/benchmarks.md, "Backward fill").
- Tracking. A face whose box overlaps (IoU >= 0.6) a face of the previous frame keeps that face's
  encoding instead of being aligned and encoded again; every `reverify_every` frames it is
  encoded afresh.
State lives for one batch only, so any peer given the same batch returns the same result: the
requester's result validation relies on that.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from p2p_attendance.compute.engine import FaceEngine, RawFace, to_gray
from p2p_attendance.compute.limits import BACKFILL_HELD_BYTES, seat_is_valid
from p2p_attendance.compute.matching import iou

HOG_WINDOW_PX = 80  # dlib's frontal detector misses faces narrower than this at upsample 0
MARGIN = 1.15
MIN_SCALE = 0.4
WEAK_FLOOR = 0.0  # dlib's own threshold: the plain face_recognition loop keeps every detection above it
# Context searched around a face's last box, in face widths each side. 1.5 was chosen on still
# composed videos; on five composed 1080p halls and the real clip 0.75 and 0.5 found the same faces
# and the same sightings per student as 1.5, at 0.08-0.1 s a frame less (crops cost a third as
# much; docs/benchmarks.md, "Crop margin"). 0.75 keeps room for a face that moved between samples.
CROP_MARGIN = 0.75
MAX_SCALE = 1.4  # above this the saving is small and upsample-0 search on an enlarged copy misses faces


def _scale_for(face_width: int) -> float:
    return min(2.0, max(MIN_SCALE, MARGIN * HOG_WINDOW_PX / face_width))


def sweep_finds(box) -> bool:
    """Whether the unscaled whole-frame search (upsample 0) finds a face of this box's width: its
    search scale is 1 or less."""
    return _scale_for(box[2] - box[0]) <= 1.0


def same_face(a, b) -> bool:
    """Two boxes on one face: much overlap, or one's centre inside the other (searches at different
    scales box one face at different sizes: a 40 px and a 60 px box of one face overlap by IoU 0.44)."""
    def centre_in(p, q):
        cx, cy = (p[0] + p[2]) / 2, (p[1] + p[3]) / 2
        return q[0] <= cx <= q[2] and q[1] <= cy <= q[3]

    return iou(a, b) >= 0.5 or centre_in(a, b) or centre_in(b, a)


@dataclass
class _Held:
    """A frame kept for the backward fill: its pixels, its faces so far, and the boxes its forward
    pass searched around in colour crops (None where it was searched whole)."""
    rgb: np.ndarray
    faces: list[RawFace]
    around: list | None


def same_face_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """same_face of every box of a (n, 4) with every box of b (m, 4), as an (n, m) bool array."""
    a, b = np.asarray(a, np.float64).reshape(-1, 1, 4), np.asarray(b, np.float64).reshape(1, -1, 4)
    inter = (np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
             * np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])))
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0) >= 0.5

    def centre_in(p, q):
        cx, cy = (p[..., 0] + p[..., 2]) / 2, (p[..., 1] + p[..., 3]) / 2
        return (q[..., 0] <= cx) & (cx <= q[..., 2]) & (q[..., 1] <= cy) & (cy <= q[..., 3])

    return overlap | centre_in(a, b) | centre_in(b, a)


def remember_seats(seats: list[tuple[int, int, int, int]], frames_boxes, limit: int) -> list[tuple[int, int, int, int]]:
    """The seats (boxes where faces were seen, the latest last) after faces seen at frames_boxes
    (per frame, its boxes, in order): each face-shaped box (limits.seat_is_valid) replaces the seats
    it is the same face as (a student sways in place) and becomes the latest; at most `limit`, the
    longest unseen forgotten first. Vectorised a frame at a time: the requester does this for every
    answer on its socket thread (a batch of 8 frames of 30 faces against 96 seats: 23 000 pairs)."""
    for boxes in frames_boxes:
        fresh = [box for box in (tuple(int(v) for v in b) for b in boxes) if seat_is_valid(box)]
        if not fresh:
            continue
        kept = ~same_face_matrix(seats, fresh).any(axis=1) if seats else np.zeros(0, bool)
        repeated = np.triu(same_face_matrix(fresh, fresh), k=1).any(axis=1)  # a later box of the frame on the same face
        seats = [seat for seat, keep in zip(seats, kept) if keep] + [box for box, again in zip(fresh, repeated) if not again]
        seats = seats[-limit:] if limit > 0 else []
    return seats


class BatchFaceFinder:
    """Finds the faces of a batch of consecutive frames cheaply: whole-frame searches now and then,
    crops around known faces in between, a sweep for large ones; encodings reused where a face stays."""

    def __init__(self, engine: FaceEngine, reverify_every: int = 4, min_iou: float = 0.6, adaptive: bool = True, search_every: int = 3, sweep: bool = True,
                 backfill: bool = True, weak_floor: float | None = WEAK_FLOOR):
        self.weak_floor = weak_floor
        self.sweep = sweep
        self.backfill = backfill
        self.engine = engine
        self.reverify_every = reverify_every
        self.min_iou = min_iou
        self.adaptive = adaptive
        self.search_every = search_every
        self.stats = {"frames": 0, "probes": 0, "searches": 0, "roi": 0, "encoded": 0, "reused": 0, "back": 0, "backfilled": 0,
                      "fresh_for_name": 0}  # copied descriptors encoded afresh for their track's name (compute/batch.py)

    def find_batch(self, frames_rgb: list[np.ndarray]) -> list[list[RawFace]]:
        return [faces for _, faces in self.iter_batch(frames_rgb)]

    def iter_batch(self, frames_rgb: Iterable[np.ndarray], seats: Iterable[tuple[int, int, int, int]] = ()) -> Iterator[tuple[np.ndarray, list[RawFace]]]:
        """(frame, its faces) in order; seats: boxes where faces were seen so far in the job,
        searched between whole-frame searches like faces lost earlier in the batch. With the
        backward fill a batch's frames (up to BACKFILL_HELD_BYTES of them, 50 MB: eight 1080p
        frames) are held until its last is searched; without it one frame at a time."""
        smallest = None
        previous: list[tuple[RawFace, int]] = []  # faces of the previous frame, with encoding age
        # Last boxes of faces not in the previous frame: seen earlier in the batch, or seats.
        seats = [tuple(seat) for seat in seats]
        missing: list[tuple[int, int, int, int]] = list(seats)
        held: list[_Held] = []  # frames kept for the backward fill, oldest first
        held_bytes = 0
        # Boxes of sure faces: the batch's scoring at least the job's min_score, and the seats (faces
        # seen, sure or confirmed, earlier in the job): a back-row face scoring 0.2-0.3 in every frame
        # of a batch was sure in the one before (seed 13's lfw_christina_aguilera, 4 frames lost).
        strong: list = list(seats)
        for position, rgb in enumerate(frames_rgb):
            self.stats["frames"] += 1
            around = None  # the boxes searched around, where this frame was not searched whole
            # Whole-frame searches run on grey levels (1.4x faster, 1/3 the memory); see engine.detect.
            gray = to_gray(rgb)
            if smallest is None or not self.adaptive:
                detections = self._detect(gray)
                self.stats["probes"] += 1
            elif position % self.search_every == 0 or not previous:
                detections = self._detect_scaled(gray, _scale_for(smallest))
                self.stats["searches"] += 1
            else:
                # A face lost for a frame (looking down, the lights dimmed) is searched again where
                # it was last seen, not only after the next whole-frame search.
                around = [face.box for face, _ in previous] + missing
                if self.sweep:
                    # The sweep below searches the whole frame for faces the HOG window finds
                    # unscaled: a crop around such a face searched it twice (0.1 s of 0.72 s a
                    # frame on the 1080p halls, docs/benchmarks.md).
                    around = [box for box in around if not sweep_finds(box)]
                detections = self._detect_around(rgb, around)
                if self.sweep:
                    # A face that was hidden at the batch's start (looking down, arriving) is found
                    # by a cheap whole-frame search for large faces (a quarter of the upsampled
                    # search's cost); small ones wait for the next whole-frame search.
                    for box, score in self._detect(gray, upsample=0):
                        if not any(same_face(box, other) for other, _ in detections):
                            detections.append((box, score))
                self.stats["roi"] += 1
            # The search plan follows sure faces only: a weak detection may be dropped in the end,
            # and one scoring about 0 (which a machine's last bit decides) must not change every
            # later search of the batch, or honest peers' answers would differ.
            widths = [box[2] - box[0] for box, score in detections if score >= self.engine.settings.min_score]
            if widths:
                smallest = min(widths) if smallest is None else min(smallest, *widths)
            faces, ages, to_encode = [], [], []
            for box, score in detections:
                match = max(previous, key=lambda item: iou(item[0].box, box), default=None)
                if match is not None and iou(match[0].box, box) >= self.min_iou and match[1] + 1 < self.reverify_every:
                    faces.append(RawFace(box, score, match[0].encoding))
                    ages.append(match[1] + 1)
                    self.stats["reused"] += 1
                else:
                    to_encode.append(len(faces))
                    faces.append(None)
                    ages.append(0)
            if to_encode:
                encodings = self.engine.encode(rgb, [detections[i][0] for i in to_encode])
                for i, encoding in zip(to_encode, encodings):
                    faces[i] = RawFace(detections[i][0], detections[i][1], encoding)
                self.stats["encoded"] += len(to_encode)
            boxes = [face.box for face in faces]
            missing = [box for box in missing + [face.box for face, _ in previous] if all(iou(box, other) < self.min_iou / 2 for other in boxes)]
            missing = [box for i, box in enumerate(missing) if all(iou(box, other) < self.min_iou / 2 for other in missing[:i])]
            previous = list(zip(faces, ages))
            strong += [face.box for face in faces if face.score >= self.engine.settings.min_score]
            if not self.backfill:
                yield rgb, self._confirmed(faces, strong)
                continue
            held.append(_Held(rgb, faces, around))
            held_bytes += rgb.nbytes
            while held_bytes > BACKFILL_HELD_BYTES and len(held) > 1:  # out of reach of the fill: final now
                oldest = held.pop(0)
                held_bytes -= oldest.rgb.nbytes
                yield oldest.rgb, self._confirmed(oldest.faces, strong)
        self._fill_backward(held)
        strong += [face.box for frame in held for face in frame.faces if face.score >= self.engine.settings.min_score]
        for frame in held:
            yield frame.rgb, self._confirmed(frame.faces, strong)

    def _detect(self, image: np.ndarray, upsample: int | None = None):
        """The engine's search, down to the weak floor where one is set (see _confirmed)."""
        if self.weak_floor is None:
            return self.engine.detect(image, upsample)
        return self.engine.detect(image, upsample, min_score=min(self.weak_floor, self.engine.settings.min_score))

    def _confirmed(self, faces: list[RawFace], strong: list) -> list[RawFace]:
        """A face scoring under the job's min_score is kept only where the batch also found it
        scoring above, or at a seat (strong holds both: a back-row face scores 0-0.3 in one frame,
        0.3-0.7 in the next, and the plain loop keeps them all), never where nothing sure was (a
        pattern on a suit scores ~0.1 in every frame)."""
        floor = self.engine.settings.min_score
        return [face for face in faces if face.score >= floor or any(same_face(face.box, box) for box in strong)]

    def _fill_backward(self, held: list[_Held]) -> None:
        """Walk the held frames from the last to the first: a face of the next frame with no face
        here is searched for in a colour crop around its box here. A small face hidden at a
        whole-frame search and seen at the frames after it is otherwise found only at the next
        whole-frame search."""
        for later, here in zip(held[:0:-1], held[-2::-1]):
            # Not again where this frame's own colour crops looked. Its whole-frame searches (the
            # full one, the sweep) ran on grey levels, which miss faces a colour crop finds: on a
            # 1080p hall a 103 px face the plain loop's colour search found (docs/benchmarks.md,
            # "Backward fill into frames searched whole"), for 4.5 ms a frame more.
            crops = here.around or []
            wanted = [face.box for face in later.faces
                      if not any(same_face(face.box, other.box) for other in here.faces)
                      and not any(same_face(face.box, box) for box in crops)]
            if not wanted:
                continue
            self.stats["back"] += 1
            found = [(box, score) for box, score in self._detect_around(here.rgb, wanted)
                     if not any(same_face(box, other.box) for other in here.faces)]
            if found:
                encodings = self.engine.encode(here.rgb, [box for box, _ in found])
                here.faces += [RawFace(box, score, encoding) for (box, score), encoding in zip(found, encodings)]
                self.stats["encoded"] += len(found)
                self.stats["backfilled"] += len(found)

    def _detect_around(self, rgb: np.ndarray, boxes) -> list:
        """Search only where faces were a frame ago: people sit still. Arrivals wait for the next
        whole-frame search (at most search_every - 1 sampled frames later). These small crops are
        searched in colour: keeping a dim face found matters more than their small cost."""
        height, width = rgb.shape[:2]
        found = []
        for left, top, right, bottom in boxes:
            margin = int(CROP_MARGIN * (right - left))
            x0, y0 = max(0, left - margin), max(0, top - margin)
            crop = rgb[y0 : min(height, bottom + margin), x0 : min(width, right + margin)]
            if min(crop.shape[:2]) < 2:
                continue  # a box off the frame (a requester's seat): nothing to search
            for (found_left, found_top, found_right, found_bottom), score in self._detect_scaled(crop, _scale_for(right - left)):
                box = (found_left + x0, found_top + y0, found_right + x0, found_bottom + y0)
                if not any(same_face(box, other) for other, _ in found):  # neighbours' regions overlap
                    found.append((box, score))
        return found

    def _detect_scaled(self, image: np.ndarray, scale: float):
        if scale > MAX_SCALE:
            return self._detect(image)  # small faces present: keep the full search
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        height, width = image.shape[:2]
        found = []
        for box, score in self._detect(small, upsample=0):
            left, top, right, bottom = (int(round(v / scale)) for v in box)
            found.append(((max(left, 0), max(top, 0), min(right, width - 1), min(bottom, height - 1)), score))
        return found
