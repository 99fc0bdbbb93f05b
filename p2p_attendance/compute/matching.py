"""Matching face encodings against a roster: pure numpy, no models."""
from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 0.6  # face_recognition's default: same person below 0.6 on its benchmark


def match_encodings(
    encodings: np.ndarray, roster_encodings: np.ndarray, roster_ids: list[str], tolerance: float
) -> list[tuple[str | None, float]]:
    """For each encoding, the closest roster entry's id (None beyond tolerance) and its distance.

    A student may have several roster rows (several enrollment photos); the closest one counts.
    """
    encodings = np.asarray(encodings, np.float32).reshape(-1, 128)
    if len(encodings) == 0:
        return []
    if len(roster_ids) == 0:
        return [(None, float("inf"))] * len(encodings)
    roster = np.asarray(roster_encodings, np.float32).reshape(-1, 128)
    distances = np.linalg.norm(encodings[:, None, :] - roster[None, :, :], axis=2)
    best = distances.argmin(axis=1)
    out = []
    for row, col in enumerate(best):
        distance = float(distances[row, col])
        out.append((roster_ids[col] if distance <= tolerance else None, distance))
    return out


def resolve_frame_conflicts(matches: list[tuple[str | None, float]]) -> list[tuple[str | None, float]]:
    """One student appears at most once per frame: when two faces match the same student, the
    closer keeps the match and the other becomes unknown (a look-alike, not a second copy)."""
    best_row: dict[str, int] = {}
    for row, (student, distance) in enumerate(matches):
        if student is not None and (student not in best_row or distance < matches[best_row[student]][1]):
            best_row[student] = row
    return [
        (student, distance) if student is None or best_row[student] == row else (None, distance)
        for row, (student, distance) in enumerate(matches)
    ]


# -- identity per face track (issue 15) -------------------------------------------------------------
LINK_DISTANCE = 0.45  # one face a sampled frame later: descriptors 0.1-0.35 apart; two people >= 0.6, look-alikes ~0.5
SAME_PLACE_IOU = 0.5  # a face whose box overlaps the track's last box this much is in the same place (the usual "same object" IoU)
LINK_REACH = 1.5  # a face's centre moves less than this many face widths between linked sightings
LINK_GAP = 2  # a face hidden for up to this many frames (looking down) keeps its track
RIVAL_ROUNDS = 3  # passes of _decide_with_rivals_seen_elsewhere: one settled every case on five halls
MIN_MARGIN = 0.05  # a track nearer its best student than its second-best by less than this is unknown
# A face of a track decided for a student carries the name up to this far beyond the tolerance.
# The tolerance is face_recognition's bound for one comparison; the track's decision rests on all
# its sightings (median within tolerance, the margin, the votes), and one sighting of the same face
# just past 0.6 is a noisier draw (a turned head, blur), not someone else. Requiring each face
# within 0.6 lost seed 5's opencv4nodejs_rick at 0.606 and 0.614 and seed 3's lfw_roy_williams at
# 0.605, frames the plain loop's own draws named; 0.03 named the same as 0.05 on five halls. The
# teacher's computer verifies a sighting up to the same distance (swarm/checks.VERIFY_SLACK).
TRACK_SLACK = 0.05

Box = tuple[int, int, int, int]


def iou(a, b) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tracks(boxes: list[list[Box]], encodings: list[np.ndarray], gap: int = LINK_GAP, link_distance: float = LINK_DISTANCE,
                same_place_distance: float | None = None) -> list[list[int]]:
    """A track number for each face of consecutive frames: a face continues the track whose last
    sighting (at most `gap` frames earlier) is nearby and has a close descriptor, nearest first.
    A face in the same place (box IoU >= SAME_PLACE_IOU) links up to `same_place_distance` (the
    job's tolerance, face_recognition's same-person bound): a face turning in its seat moves its
    descriptor further than LINK_DISTANCE, which guards against look-alikes elsewhere in the frame,
    and a look-alike does not take the same seat between two sampled frames."""
    same_place_distance = link_distance if same_place_distance is None else max(link_distance, same_place_distance)
    # Per track: last frame, box and encoding, as arrays. Each frame compares its faces with every
    # live track at once: a frame of 64 faces against 192 live tracks was ~98 000 Python steps, and
    # the requester reruns this on every volunteer's batch (the rule on a 32x64 batch took 5.75 s, now 0.31 s).
    last = np.zeros(0, np.int64)
    track_boxes = np.zeros((0, 4), np.float64)
    track_enc = np.zeros((0, 128), np.float32)
    out: list[list[int]] = []
    for frame, (frame_boxes, frame_enc) in enumerate(zip(boxes, encodings)):
        frame_enc = np.asarray(frame_enc, np.float32).reshape(-1, 128)
        face_boxes = np.asarray(frame_boxes, np.float64).reshape(-1, 4)
        live = np.flatnonzero(frame - last <= gap)
        pairs = []
        if len(live) and len(face_boxes):
            tb = track_boxes[live]
            width = np.maximum(tb[:, 2] - tb[:, 0], 1)
            shift = np.hypot((face_boxes[None, :, 0] + face_boxes[None, :, 2] - tb[:, None, 0] - tb[:, None, 2]) / 2,
                             (face_boxes[None, :, 1] + face_boxes[None, :, 3] - tb[:, None, 1] - tb[:, None, 3]) / 2)
            near = shift <= LINK_REACH * width[:, None]
            rows, cols = np.nonzero(near)
            if len(rows):
                d = np.linalg.norm(frame_enc[cols] - track_enc[live[rows]], axis=1)
                overlap = _iou_pairs(tb[rows], face_boxes[cols])
                ok = (d <= link_distance) | ((d <= same_place_distance) & (overlap >= SAME_PLACE_IOU))
                pairs = sorted(zip(d[ok].tolist(), (frame - last[live[rows[ok]]]).tolist(), live[rows[ok]].tolist(), cols[ok].tolist()))
        ids = [-1] * len(face_boxes)
        taken: set[int] = set()
        for _, _, t, i in pairs:
            if ids[i] < 0 and t not in taken:
                ids[i] = t
                taken.add(t)
        new = [i for i in range(len(face_boxes)) if ids[i] < 0]
        for k, i in enumerate(new):
            ids[i] = len(last) + k
        if new:
            last = np.concatenate([last, np.zeros(len(new), np.int64)])
            track_boxes = np.concatenate([track_boxes, np.zeros((len(new), 4))])
            track_enc = np.concatenate([track_enc, np.zeros((len(new), 128), np.float32)])
        if len(face_boxes):
            last[ids] = frame
            track_boxes[ids] = face_boxes
            track_enc[ids] = frame_enc
        out.append(ids)
    return out


def _iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """iou() of a[k] and b[k] for each k ((n, 4) arrays of left, top, right, bottom)."""
    inter = (np.maximum(0, np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]))
             * np.maximum(0, np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])))
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_batch(
    boxes: list[list[Box]], encodings: list[np.ndarray], roster_encodings: np.ndarray, roster_ids: list[str], tolerance: float,
    min_margin: float = MIN_MARGIN, link_distance: float = LINK_DISTANCE,
) -> list[list[tuple[str | None, float]]]:
    """(student id or None, distance) per face of a batch (match_batch_tracks, without the tracks' names)."""
    return match_batch_tracks(boxes, encodings, roster_encodings, roster_ids, tolerance, min_margin, link_distance)[0]


def match_batch_tracks(
    boxes: list[list[Box]], encodings: list[np.ndarray], roster_encodings: np.ndarray, roster_ids: list[str], tolerance: float,
    min_margin: float = MIN_MARGIN, link_distance: float = LINK_DISTANCE,
) -> tuple[list[list[tuple[str | None, float]]], list[list[str | None]]]:
    """(student id or None, distance) per face of a batch of consecutive frames, decided per track.

    A track (link_tracks: a face a frame later, nearby with a close descriptor) is one student
    when, over its sightings with a descriptor of their own (_distinct), that student has the
    lowest median distance, within tolerance, at least MIN_MARGIN below the second-best student's
    (a rival decided on another face in the track's frames aside: _decide_with_rivals_seen_elsewhere), and no
    other student has more per-frame votes; otherwise it is unknown. Of two tracks that share a
    frame and decide the same student, the farther is unknown (a look-alike). An undecided track in
    the same place as a decided one carries its name (_carry_names_in_place). A face carries its
    track's student only where its own distance to that student is within tolerance + TRACK_SLACK,
    so each named sighting still stands on its own encoding (the teacher's computer verifies them
    one by one); the distance is the face's own distance to the student named, or to the nearest one.
    The requester reruns this on a volunteer's boxes and encodings (swarm/checks.claim_problem).
    Also gives, per face, the student its track was decided for (None where undecided), whether or
    not the face's own distance let it carry the name."""
    mats = [np.asarray(e, np.float32).reshape(-1, 128) for e in encodings]
    if not roster_ids:
        return [[(None, float("inf"))] * len(m) for m in mats], [[None] * len(m) for m in mats]
    students = list(dict.fromkeys(roster_ids))
    column = {sid: k for k, sid in enumerate(students)}
    roster = np.asarray(roster_encodings, np.float32).reshape(-1, 128)
    per_student = []  # per frame: (faces, students) distance to each student's closest roster row
    for m in mats:
        rows = np.linalg.norm(m[:, None, :] - roster[None, :, :], axis=2) if len(m) else np.zeros((0, len(roster)), np.float32)
        d = np.full((len(m), len(students)), np.inf, np.float32)
        for r, sid in enumerate(roster_ids):
            d[:, column[sid]] = np.minimum(d[:, column[sid]], rows[:, r])
        per_student.append(d)
    track_ids = link_tracks(boxes, mats, link_distance=link_distance)
    sightings: dict[int, list[tuple[int, int]]] = {}
    for f, ids in enumerate(track_ids):
        for i, t in enumerate(ids):
            sightings.setdefault(t, []).append((f, i))
    decided: dict[int, tuple[int, float]] = {}  # track -> (student column, median distance)
    distances = {t: np.stack([per_student[f][i] for f, i in _distinct(seen, mats)]) for t, seen in sightings.items()}
    for t, d in distances.items():
        decision = _decide(d, tolerance, min_margin)
        if decision is not None:
            decided[t] = decision
    frames_of = {t: {f for f, _ in seen} for t, seen in sightings.items()}
    claimed: dict[int, set[int]] = {}  # student column -> frames already claimed
    for t in sorted(decided, key=lambda t: (decided[t][1], t)):
        student = decided[t][0]
        if claimed.get(student, set()) & frames_of[t]:
            del decided[t]
        else:
            claimed.setdefault(student, set()).update(frames_of[t])
    _decide_with_rivals_seen_elsewhere(distances, decided, claimed, frames_of, tolerance, min_margin)
    _carry_names_in_place(boxes, mats, track_ids, sightings, per_student, decided, claimed, frames_of, link_distance, tolerance)
    out = []
    for f, ids in enumerate(track_ids):
        frame_out = []
        for i, t in enumerate(ids):
            d = per_student[f][i]
            if t in decided and d[decided[t][0]] <= tolerance + TRACK_SLACK:
                frame_out.append((students[decided[t][0]], float(d[decided[t][0]])))
            else:
                frame_out.append((None, float(d.min())))
        out.append(frame_out)
    return out, [[students[decided[t][0]] if t in decided else None for t in ids] for ids in track_ids]


def _decide(d: np.ndarray, tolerance: float, min_margin: float) -> tuple[int, float] | None:
    """A track's student (column, median distance) from its distances (sightings x students), or
    None: the lowest median within tolerance, at least min_margin below the second-best's, and
    no student with more per-sighting votes (a sighting votes for its nearest within tolerance)."""
    median = np.median(d, axis=0)
    order = np.argsort(median, kind="stable")
    best = int(order[0])
    second = float(median[order[1]]) if len(order) > 1 else float("inf")
    nearest = d.argmin(axis=1)
    votes = np.bincount(nearest[d[np.arange(len(d)), nearest] <= tolerance], minlength=d.shape[1])
    if median[best] <= tolerance and second - median[best] >= min_margin and votes[best] >= votes.max():
        return best, float(median[best])
    return None


def _decide_with_rivals_seen_elsewhere(distances, decided, claimed, frames_of, tolerance, min_margin) -> None:
    """One student is one face in a frame: a rival within the margin that is decided on another
    face in one of the track's frames is not this track, so it does not make the track ambiguous.
    Only a rival is set aside, never the track's own nearest student: setting aside the nearest
    until someone fits names strangers (seed 5: a stranger named for an absent student in 6
    frames). Seed 5's lfw_bill_gates (median 0.598, openface_lennon 0.631 and decided on his own
    face in 4 of the 8 frames) was unknown for the whole lecture. As in the first pass, of two
    tracks sharing a frame that would take one student, the nearer does. A decision may set aside
    another track's rival, so rounds repeat, at most RIVAL_ROUNDS: each costs a pass over the
    undecided tracks, and a hostile batch (32 frames of 64 faces, every face a track) could chain
    one decision a round."""
    pending = {}  # undecided track -> its nearest student, where that one is within tolerance
    for t in sorted(distances):
        if t not in decided:
            median = np.median(distances[t], axis=0)
            best = int(np.argmin(median))
            if median[best] <= tolerance:
                pending[t] = best
    for _ in range(RIVAL_ROUNDS):
        candidates = []
        for t, best in pending.items():
            rivals = [s for s, frames in claimed.items() if s != best and frames & frames_of[t]]
            if not rivals or claimed.get(best, set()) & frames_of[t]:
                continue
            d = distances[t].astype(np.float64)  # a copy: the rivals' columns set aside for this track only
            d[:, rivals] = np.inf
            decision = _decide(d, tolerance, min_margin)
            if decision is not None and decision[0] == best:
                candidates.append((decision[1], t, best))
        taken = 0
        for median, t, best in sorted(candidates):
            if not claimed.get(best, set()) & frames_of[t]:
                decided[t] = (best, median)
                claimed.setdefault(best, set()).update(frames_of[t])
                del pending[t]
                taken += 1
        if not taken:
            return


def tracks_on_one_draw(boxes: list[list[Box]], encodings: list[np.ndarray], track_names: list[list[str | None]]) -> list[tuple[int, int]]:
    """The last sighting (frame, face) of each track decided for a student (track_names:
    match_batch_tracks' second answer) over two frames or more whose sightings share one descriptor:
    a copy repeated over the frames (tracking.py), one draw deciding them all."""
    mats = [np.asarray(e, np.float32).reshape(-1, 128) for e in encodings]
    sightings: dict[int, list[tuple[int, int]]] = {}
    for f, ids in enumerate(link_tracks(boxes, mats)):
        for i, t in enumerate(ids):
            sightings.setdefault(t, []).append((f, i))
    return [seen[-1] for seen in sightings.values()
            if len(seen) > 1 and track_names[seen[0][0]][seen[0][1]] is not None and len(_distinct(seen, mats)) == 1]


def _distinct(seen: list[tuple[int, int]], mats: list[np.ndarray]) -> list[tuple[int, int]]:
    """A track's sightings (frame, face) less those whose descriptor repeats an earlier one's: the
    finder copies a face's descriptor to the next frames where it stays (tracking.py), and a copy
    is no new evidence. Counted once per copy, one descriptor at 0.614 copied over 4 frames
    outvoted 4 fresh ones at 0.59 (a 105 px student left unnamed for a whole batch)."""
    out, rows = [], set()
    for f, i in seen:
        row = mats[f][i].tobytes()
        if row not in rows:
            out.append((f, i))
            rows.add(row)
    return out


def _carry_names_in_place(boxes, mats, track_ids, sightings, per_student, decided, claimed, frames_of, link_distance, tolerance) -> None:
    """A face that turns in its seat moves its descriptor further than LINK_DISTANCE and starts a
    track of its own, often too close a call to name on its own sightings. Where it stays in the
    same place (link_tracks' same-place link: box IoU >= SAME_PLACE_IOU, within tolerance) as a
    track decided for one student, it carries that name, if that student has the most votes on it
    and is not already seen elsewhere in its frames. Names are carried, never decided on the merged
    track: a student turned away for most of a batch keeps the frames they faced the camera in.
    A seat links across the whole batch, not only LINK_GAP frames: a back-row student hidden by a
    neighbour for 3 sampled frames (seed 3's lfw_oswaldo_paya, seen at a batch's frames 3 and 7,
    margin 0.044 alone at 3) is still the one decided in that seat; every face still needs that
    student as its own nearest within tolerance (the votes) and its own distance within it."""
    place_ids = link_tracks(boxes, mats, gap=len(boxes), link_distance=link_distance, same_place_distance=tolerance)
    place_of = {t: {place_ids[f][i] for f, i in seen} for t, seen in sightings.items()}
    named_in_place: dict[int, set[int]] = {}
    for t, (student, _) in decided.items():
        if len(place_of[t]) == 1:
            named_in_place.setdefault(next(iter(place_of[t])), set()).add(student)
    for t in sorted(sightings):
        if t in decided or len(place_of[t]) != 1:
            continue
        names = named_in_place.get(next(iter(place_of[t])), set())
        if len(names) != 1:
            continue
        student = next(iter(names))
        d = np.stack([per_student[f][i] for f, i in _distinct(sightings[t], mats)])
        nearest = d.argmin(axis=1)
        votes = np.bincount(nearest[d[np.arange(len(d)), nearest] <= tolerance], minlength=d.shape[1])
        if votes[student] == 0 or votes[student] < votes.max() or claimed.get(student, set()) & frames_of[t]:
            continue
        decided[t] = (student, float(np.median(d[:, student])))
        claimed.setdefault(student, set()).update(frames_of[t])


def names_across_seam(before: tuple[list, list, list], after: tuple[list, list, list], roster_encodings: np.ndarray, roster_ids: list[str],
                      tolerance: float) -> tuple[tuple[dict, dict], tuple[dict, dict]]:
    """What the batch rule says across the seam between two consecutive batches, each given as
    (boxes, encodings, track names) per frame, the track names being match_batch_tracks' second
    answer on that batch alone (the student each face's track was decided for, or None): the rule
    over the two as one run of frames.

    Names: a face is proposed only where its own track was undecided, and only a student no
    decided track of its own batch holds in that frame: a name its own batch decided is never
    changed, nor given to a second face. A batch is 8 sampled frames; a student who sits on at a
    batch's edge has their evidence cut in two (seed 5's lfw_bill_gates: decided in one batch, two
    descriptors at 0.581 and 0.619 in the next, median 0.60002).

    Names taken back: a face whose own track was decided for a student whom the joint run does not
    give its track, and decides on another face in a frame where this face's seat (link_tracks'
    same-place link over the whole run, as in _carry_names_in_place) holds a face of its own. One
    student is one face in a frame: that seat is someone else's. Seed 8's stranger sat unnamed
    beside lfw_john_snow for a batch and was named John (0.574-0.612, 4 frames) in the next, after
    John had left; on eight halls this took back those 4 names and no other.

    Returns ((names for before, names for after), (taken back in before, taken back in after)):
    names {(frame, face): (student, distance)}, taken back {(frame, face): student}."""
    boxes, encodings, decided = (list(b) + list(a) for b, a in zip(before, after))
    joint, joint_names = match_batch_tracks(boxes, encodings, roster_encodings, roster_ids, tolerance)
    mats = [np.asarray(e, np.float32).reshape(-1, 128) for e in encodings]
    seat_ids = link_tracks(boxes, mats, gap=len(boxes), same_place_distance=tolerance)
    seat_faces: dict[int, dict[int, int]] = {}  # seat -> {frame: its face there}
    for f, ids in enumerate(seat_ids):
        for i, seat in enumerate(ids):
            seat_faces.setdefault(seat, {})[f] = i
    decided_on = {(f, sid): i for f, frame_names in enumerate(joint_names) for i, sid in enumerate(frame_names) if sid is not None}
    names: tuple[dict, dict] = ({}, {})
    taken_back: tuple[dict, dict] = ({}, {})
    split = len(before[0])
    for f, (frame_joint, frame_decided) in enumerate(zip(joint, decided)):
        held = {sid for sid in frame_decided if sid is not None}
        side, frame = (0, f) if f < split else (1, f - split)
        for i, ((student, distance), own) in enumerate(zip(frame_joint, frame_decided)):
            if own is None and student is not None and student not in held:
                names[side][(frame, i)] = (student, distance)
            elif own is not None and joint_names[f][i] != own and any(
                    decided_on.get((g, own), face) != face for g, face in seat_faces[seat_ids[f][i]].items()):
                taken_back[side][(frame, i)] = own
    return names, taken_back
