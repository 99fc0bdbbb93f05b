"""Grouping faces that matched nobody into unknown people (one stranger all lecture = 1 unknown).

`group_unknown_faces` is the one rule: the report's unknown people (attendance/tally.py), the Take
screen's strip and the review all show its groups, numbered the same way.

How (docs/attendance-rule.md, "Unknown people"): a person's descriptors drift with pose, light and
size, so comparing faces one by one splits a stranger into several "unknowns" and lets a student
seen at a bad angle (missed the roster's tolerance) pass for one. So:
1. Tracks: a face in the same place in the next sampled frame (people sit still) is the same
   person; two unmatched faces must also have similar descriptors. Two boxes on one face in one
   frame (a double detection) are one person.
2. A track that holds two of a student's sightings (or as many as unmatched faces) is that
   student: its unmatched faces are the student at a bad angle, never an unknown person.
3. The remaining tracks and the students (their sightings in this video) are grouped by average
   linkage on descriptors; two faces in the same frame are two people, so groups that share a
   frame never merge, nor do two students. A group that joins a student is that student.
4. What is left, seen in at least `min_frames` frames, are the unknown people ...
5. ... unless the group is within the roster's tolerance of enrolled students (`enrolled`): the
   median over its faces of the distance to the nearest enrolled photo is at most the job's
   tolerance (or up to LOOKS_LIKE_SLACK beyond, where that student is matched nowhere in the
   video and no other is within the margin of them). The plain per-frame rule would have named a student for many such faces; the per-track
   rule found them ambiguous (two students almost as near) or too far for a name. They are an
   *unsure* group ("Unsure N") that looks like students, never an unknown person (a stranger). It
   looks like the nearest student (median over its faces) who is not matched elsewhere in most of
   its frames (two faces in one frame are two people: the students it is nearest are often sitting
   in their own seats), and those the per-track rule could not tell from that one (within its
   margin, 0.05), at most 3.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from p2p_attendance.attendance.model import FrameResult

UNKNOWN_THRESHOLD = 0.55  # mean distance below which two groups are one person
MIN_UNKNOWN_FRAMES = 3  # a face seen in only a frame or two is more likely a detector error than a person
TRACK_GAP_S = 2.5  # faces this far apart in time, at most, can be linked into a track
TRACK_MAX_SHIFT = 0.6  # ... if their centres are at most this many face widths apart
TRACK_MAX_SCALE = 1.5  # ... their widths within this ratio
TRACK_MAX_DISTANCE = 0.7  # ... and their descriptors this close (consecutive frames barely drift)
SAMPLES_PER_GROUP = 8  # descriptors per track compared when grouping (cost), spread over the track
MAX_GROUPS = 300  # tracks grouped exactly; smaller ones beyond this join their nearest group
MAX_LOOKS_LIKE = 3  # students an unsure group is said to look like, nearest first
# Students this much further than the nearest the per-track rule cannot tell apart: compute/matching.py's
# MIN_MARGIN (attendance/ sits below compute/, so the figure is repeated; a test keeps them equal).
LOOKS_LIKE_MARGIN = 0.05
# How far beyond the tolerance a group may still be a student: compute/matching.py's TRACK_SLACK, up
# to which a decided track's faces carry its name and the teacher's computer verifies a sighting
# (repeated for the same reason; a test keeps them equal).
LOOKS_LIKE_SLACK = 0.05


@dataclass(frozen=True)
class EnrolledFaces:
    """The roster as the unsure rule reads it: a student id per enrolled photo, the photos'
    descriptors ((rows, 128) float32) and the job's tolerance (JobParams carries all three)."""

    ids: tuple[str, ...]
    matrix: np.ndarray = field(repr=False)
    tolerance: float

    @classmethod
    def of(cls, ids: Sequence[str], matrix, tolerance: float) -> EnrolledFaces:
        matrix = np.array(matrix, np.float32).reshape(-1, 128)  # a copy, read-only: shared by every thread that groups
        matrix.flags.writeable = False
        if len(ids) != len(matrix):
            raise ValueError(f"{len(ids)} ids for {len(matrix)} enrolled descriptors")
        return cls(tuple(str(i) for i in ids), matrix, float(tolerance))


@dataclass(frozen=True)
class UnknownGroup:
    """One unknown person ("Unknown N") or unsure group ("Unsure N"), each numbered by first appearance."""

    label: str
    faces: tuple[tuple[int, int], ...]  # (frame index, face position) of each of its faces, in time order
    times: tuple[float, ...]  # the time of each face, same order
    looks_like: tuple[str, ...] = ()  # an unsure group: the student ids it looks like, nearest first

    @property
    def unsure(self) -> bool:
        """Within the roster's tolerance of students: one of them the rule could not name, not a stranger."""
        return bool(self.looks_like)

    def looks_like_names(self, names: Mapping[str, str]) -> list[str]:
        """The students it looks like as the teacher reads them (names: student id -> name)."""
        return [names.get(sid, sid) for sid in self.looks_like]


def groups_count_text(groups: Iterable[UnknownGroup]) -> str:
    """How many groups, unknown people and unsure groups apart where there are unsure ones:
    '3', or '1 unknown, 2 unsure' (the Take strip's and the review's titles)."""
    groups = list(groups)
    unsure = sum(g.unsure for g in groups)
    return f"{len(groups) - unsure} unknown, {unsure} unsure" if unsure else f"{len(groups)}"


@dataclass(frozen=True)
class _Sighting:
    frame: int
    position: int
    time_s: float
    box: tuple[int, int, int, int]
    student_id: str | None
    encoding: np.ndarray | None


def group_unknown_faces(
    frames: Iterable[FrameResult], threshold: float = UNKNOWN_THRESHOLD, min_frames: int = MIN_UNKNOWN_FRAMES,
    descriptors: Mapping[str, np.ndarray] | None = None, enrolled: EnrolledFaces | None = None,
) -> tuple[UnknownGroup, ...]:
    """The unknown faces of these frames grouped into people. Depends only on the set of frames
    (not on the order they arrived in) and `descriptors`, so every view of the same frames numbers
    them alike. descriptors: student id -> a few of their descriptors from this video (the job
    keeps them, attendance/evidence.py: a matched face's own descriptor is not kept with its frame),
    compared with the unknown tracks alongside the student's own faces. enrolled: the roster, to
    tell unsure groups (near enrolled students) from unknown people (None: every group is unknown)."""
    sightings, encodings, coded, raw = _sightings(frames)
    if not any(s.student_id is None and s.encoding is not None for s in sightings):
        return ()
    tracks = _tracks(sightings, encodings, coded)
    # A track is a student's when it holds two of their sightings, or as many as unknown faces
    # (one wrong match on a stranger's face does not make the stranger that student).
    students: dict[str, list[int]] = {}  # student -> sightings (their own and their track's unknown faces)
    unknown_tracks: list[list[int]] = []
    for track in tracks:
        unknown = [i for i in track if sightings[i].student_id is None and sightings[i].encoding is not None]
        counts: dict[str, int] = {}
        for i in track:
            if sightings[i].student_id is not None:
                counts[sightings[i].student_id] = counts.get(sightings[i].student_id, 0) + 1
        owner = min(counts, key=lambda sid: (-counts[sid], sid)) if counts else None
        for i in track:
            if sightings[i].student_id is not None:
                students.setdefault(sightings[i].student_id, []).append(i)
        if owner is not None and (counts[owner] >= 2 or counts[owner] >= len(unknown)):
            students[owner].extend(unknown)
        elif unknown:
            unknown_tracks.append(unknown)
    if not unknown_tracks:
        return ()
    nodes = [sorted(members) for _, members in sorted(students.items())] + unknown_tracks
    is_student = np.array([True] * len(students) + [False] * len(unknown_tracks))
    extra = [_kept_descriptors((descriptors or {}).get(sid)) for sid in sorted(students)] + [[] for _ in unknown_tracks]
    labels = _group_tracks(sightings, raw, nodes, is_student, threshold, extra)
    people: dict[int, list[int]] = {}
    for node, label in enumerate(labels):
        if not is_student[node]:
            people.setdefault(int(label), []).extend(nodes[node])
    student_labels = {int(labels[n]) for n in np.flatnonzero(is_student)}
    kept = []
    for label, members in people.items():
        if label in student_labels:
            continue  # joined a student: that student at a bad angle
        members = sorted(members)
        if len({sightings[i].frame for i in members}) >= min_frames:
            kept.append(members)
    kept.sort(key=lambda rows: (sightings[rows[0]].time_s, sightings[rows[0]].frame, sightings[rows[0]].position))
    matched_in: dict[int, set[str]] = {}  # frame -> the students matched in it (read only with a roster)
    for s in sightings if enrolled is not None else ():
        if s.student_id is not None:
            matched_in.setdefault(s.frame, set()).add(s.student_id)
    seen = set().union(*matched_in.values())  # students matched anywhere in these frames
    out, numbers = [], {"Unknown": 0, "Unsure": 0}
    for rows in kept:
        looks_like = ()
        if enrolled is not None:
            frames_of = {sightings[i].frame for i in rows}
            seen_elsewhere: dict[str, int] = {}  # student -> frames of this group in which they are matched on another face
            for frame in frames_of:
                for sid in matched_in.get(frame, ()):
                    seen_elsewhere[sid] = seen_elsewhere.get(sid, 0) + 1
            elsewhere = {sid for sid, n in seen_elsewhere.items() if 2 * n > len(frames_of)}
            looks_like = _looks_like(np.array([sightings[i].encoding for i in rows]), enrolled, elsewhere, seen)
        kind = "Unsure" if looks_like else "Unknown"
        numbers[kind] += 1
        out.append(UnknownGroup(
            f"{kind} {numbers[kind]}",
            tuple((sightings[i].frame, sightings[i].position) for i in rows),
            tuple(sightings[i].time_s for i in rows),
            looks_like,
        ))
    return tuple(out)


def _looks_like(encodings: np.ndarray, enrolled: EnrolledFaces, elsewhere: set[str], seen: set[str]) -> tuple[str, ...]:
    """The students an unmatched group looks like (ids, nearest first), or () for a stranger.
    Unsure when the median over its faces of the distance to the nearest enrolled photo is within
    the tolerance (the plain per-frame rule would have named a student for most of its faces).
    Named: the nearest student by median distance, `elsewhere` (matched on other faces in most of
    the group's frames) left out unless that leaves none, and those within LOOKS_LIKE_MARGIN of that one.
    Measured (hall seed 1): a 40 px back-row student is 0.55-0.61 from three students sitting in
    their seats, 0.62 from his own photo.
    Just beyond the tolerance (up to LOOKS_LIKE_SLACK) a group is unsure only when that nearest
    student was matched nowhere in the video (`seen`: the students matched on any face) and is
    LOOKS_LIKE_MARGIN nearer than any other not matched elsewhere in its frames (the per-track
    rule's margin for a name; only the distance is relaxed): a student whose own photo is 0.6 from how they look in the video (seed
    13's deepface_personb, median 0.604, the next student 0.068 further, named by the plain
    per-frame rule in 10 of 20 frames and by the per-track rule in none; seed 11's lfw_jim_tressel,
    0.634) was an unknown person, and marked absent with nothing said. A group that far from a
    student seen in the video, or from two about as much, is a stranger who resembles them (four
    strangers of fourteen halls were unsure without the margin: seed 13's lfw_glafcos_clerides
    0.632 from one student and 0.654 from another)."""
    if not len(enrolled.ids) or not len(encodings):
        return ()
    within = enrolled.tolerance + LOOKS_LIKE_SLACK
    distances = _pairwise(encodings.astype(np.float32), enrolled.matrix)  # faces x enrolled photos
    nearest = float(np.median(distances.min(axis=1)))
    if not nearest <= within:
        return ()
    ids = np.array(enrolled.ids)
    medians = {sid: float(np.median(distances[:, ids == sid].min(axis=1))) for sid in sorted(set(enrolled.ids))}
    ranked = sorted(medians, key=lambda sid: (medians[sid], sid))
    ranked = [sid for sid in ranked if sid not in elsewhere] or ranked
    if medians[ranked[0]] > within:
        return ()  # near only students seen elsewhere: a stranger who resembles them, not one of ours
    alike = tuple(sid for sid in ranked if medians[sid] <= medians[ranked[0]] + LOOKS_LIKE_MARGIN)
    if nearest > enrolled.tolerance and (ranked[0] in seen or len(alike) > 1):
        return ()  # just beyond the tolerance of a student seen elsewhere, or of no one student clearly: a stranger
    return alike[:MAX_LOOKS_LIKE]


def _sightings(frames: Iterable[FrameResult]) -> tuple[list[_Sighting], np.ndarray, np.ndarray, list]:
    """Every face of these frames in (frame index, position) order; the descriptors of the
    unmatched ones as one matrix (zeros where none) with a mask of those present; and each face's
    descriptor as sent (a matched face's is read only when its student is compared: a lecture
    has ~100,000 matched faces, and reading a descriptor costs more than the rest of the grouping)."""
    out, blocks, masks, raw = [], [], [], []
    for frame in sorted(frames, key=lambda f: f.index):
        count = len(frame.faces)
        encodings = tuple(frame.encodings[:count]) + (None,) * max(0, count - len(frame.encodings))
        matrix, present = np.zeros((count, 128), np.float32), np.zeros(count, bool)
        for position, face in enumerate(frame.faces):
            if face.student_id is None:
                vector = _vector(encodings[position])
                if vector is not None:
                    matrix[position], present[position] = vector, True
        for position, face in enumerate(frame.faces):
            out.append(_Sighting(frame.index, position, float(frame.time_s), tuple(face.box), face.student_id,
                                 matrix[position] if present[position] else None))
        raw.extend(encodings)
        blocks.append(matrix)
        masks.append(present)
    if not out:
        return out, np.zeros((0, 128), np.float32), np.zeros(0, bool), raw
    return out, np.concatenate(blocks), np.concatenate(masks), raw


def _kept_descriptors(matrix) -> list[np.ndarray]:
    """A student's kept descriptors as vectors (at most SAMPLES_PER_GROUP; malformed rows skipped)."""
    if matrix is None:
        return []
    try:
        rows = np.asarray(matrix, np.float32).reshape(-1, 128)[:SAMPLES_PER_GROUP]
    except (TypeError, ValueError):
        return []
    return [row for row in rows if np.all(np.isfinite(row))]


def _vector(encoding) -> np.ndarray | None:
    """A descriptor as sent, as a vector; None when missing or not 128 finite numbers."""
    if encoding is None:
        return None
    try:
        vector = np.asarray(encoding, np.float32).reshape(-1)
    except (TypeError, ValueError):
        return None
    return vector if vector.size == 128 and np.all(np.isfinite(vector)) else None


def _tracks(sightings: list[_Sighting], encodings: np.ndarray, coded: np.ndarray) -> list[list[int]]:
    """Sightings linked frame to frame where the face stays in place and looks alike: lists of
    sighting numbers, each in time order. Each face links to at most one in the next frame."""
    spans: dict[int, list[int]] = {}  # frame -> [first, last + 1] sighting (sightings are in frame order)
    for i, s in enumerate(sightings):
        spans.setdefault(s.frame, [i, i])[1] = i + 1
    order = sorted(spans)
    parent = list(range(len(sightings)))
    boxes = np.array([s.box for s in sightings], np.float64).reshape(-1, 4)
    centres, widths = (boxes[:, :2] + boxes[:, 2:]) / 2, np.maximum(1, boxes[:, 2] - boxes[:, 0])
    ids = {sid: n for n, sid in enumerate(sorted({s.student_id for s in sightings if s.student_id is not None}))}
    student = np.array([ids.get(s.student_id, -1) for s in sightings], np.int64)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def link_costs(a, b) -> np.ndarray:
        """How alike each face of a is to each of b (index arrays or slices; inf: cannot be one person)."""
        wa, wb = widths[a][:, None], widths[b][None, :]
        offset = centres[a][:, None, :] - centres[b][None, :, :]
        shift = np.sqrt((offset * offset).sum(axis=2)) / ((wa + wb) / 2)
        ok = (np.maximum(wa, wb) <= TRACK_MAX_SCALE * np.minimum(wa, wb)) & (shift <= TRACK_MAX_SHIFT)
        sa, sb = student[a][:, None], student[b][None, :]
        ok &= (sa < 0) | (sb < 0) | (sa == sb)  # two different students are two people
        distance = shift  # a matched face: by place alone
        ca, cb = coded[a], coded[b]
        both = ca[:, None] & cb[None, :] & ok
        if both.any():  # two unmatched faces: their descriptors too
            distance = np.where(both, _pairwise(encodings[a], encodings[b]), shift)
            ok &= ~both | (distance <= TRACK_MAX_DISTANCE)
        return np.where(ok, distance, np.inf)

    for first, end in spans.values():
        # Two boxes on one face (the detector found it twice) are one person, not two: joined here,
        # they do not keep the face apart from its own sightings elsewhere (two faces of one frame never merge).
        unmatched = np.flatnonzero(student[first:end] < 0) + first  # two matched boxes: two students
        if len(unmatched) and end - first > 1:
            costs = link_costs(unmatched, slice(first, end))
            for x, y in np.argwhere(np.isfinite(costs)):
                if unmatched[x] != first + y:
                    parent[root(first + int(y))] = root(int(unmatched[x]))
    for prev, nxt in zip(order, order[1:]):
        (a0, a1), (b0, b1) = spans[prev], spans[nxt]
        if sightings[b0].time_s - sightings[a0].time_s > TRACK_GAP_S:
            continue
        if student[a0:a1].min() >= 0 and student[b0:b1].min() >= 0:
            continue  # only tracks with unmatched faces matter
        costs = link_costs(slice(a0, a1), slice(b0, b1))
        x, y = np.nonzero(np.isfinite(costs))
        used_a, used_b = set(), set()
        for k in np.lexsort((y, x, costs[x, y])):  # the most alike pairs first
            if x[k] not in used_a and y[k] not in used_b:
                used_a.add(x[k])
                used_b.add(y[k])
                parent[root(b0 + int(y[k]))] = root(a0 + int(x[k]))
    tracks: dict[int, list[int]] = {}
    for i in range(len(sightings)):
        tracks.setdefault(root(i), []).append(i)
    return list(tracks.values())


def _group_tracks(
    sightings: list[_Sighting], raw: list, nodes: list[list[int]], is_student: np.ndarray, threshold: float, kept: list[list[np.ndarray]]
) -> np.ndarray:
    """Average-linkage grouping of nodes (students first, then unknown tracks): a group label per
    node. Never merges two groups seen in the same frame, nor two students. kept: descriptors
    compared for each node besides its own faces' (a student's kept descriptors)."""
    n = len(nodes)
    samples = []
    for members, extra in zip(nodes, kept):
        sent = [i for i in members if raw[i] is not None]
        picks = np.linspace(0, len(sent) - 1, min(len(sent), SAMPLES_PER_GROUP)).astype(int) if sent else []
        vectors = [sightings[sent[p]].encoding if sightings[sent[p]].encoding is not None else _vector(raw[sent[p]]) for p in picks]
        samples.append(list(extra) + [v for v in vectors if v is not None])
    # The biggest unknown tracks are grouped exactly (the merge loop is O(n^3)); the rest join after.
    unknown = [k for k in range(n) if not is_student[k]]
    unknown.sort(key=lambda k: (-len(nodes[k]), k))
    exact = sorted([k for k in range(n) if is_student[k]] + unknown[: max(0, MAX_GROUPS - int(is_student.sum()))])
    rest = sorted(set(range(n)) - set(exact))

    frames = sorted({s.frame for s in sightings})
    column = {f: c for c, f in enumerate(frames)}
    cols = [np.unique([column[sightings[i].frame] for i in members]) for members in nodes]  # frames each node is seen in
    seen = np.zeros((len(exact), len(frames)), np.float32)
    for row, k in enumerate(exact):
        seen[row, cols[k]] = 1
    sums, sizes = _sample_sums(samples, exact, exact)
    sizes_at_start = sizes.copy()
    m = len(exact)
    conflict = (seen @ seen.T) > 0
    student = is_student[exact].copy()
    conflict |= np.outer(student, student)
    active = sizes > 0
    labels = np.arange(m)
    np.fill_diagonal(sums, np.inf)
    while True:
        mean = sums / np.maximum(np.outer(sizes, sizes), 1)
        mean[conflict] = np.inf
        mean[~active, :] = np.inf
        mean[:, ~active] = np.inf
        a, b = np.unravel_index(np.argmin(mean), mean.shape)
        if not np.isfinite(mean[a, b]) or mean[a, b] >= threshold:
            break
        a, b = min(a, b), max(a, b)
        sums[a, :] += sums[b, :]
        sums[:, a] += sums[:, b]
        sums[a, a] = np.inf
        sizes[a] += sizes[b]
        conflict[a, :] |= conflict[b, :]
        conflict[:, a] |= conflict[:, b]
        conflict[a, a] = False
        student[a] |= student[b]
        conflict[a, :] |= student[a] & student
        conflict[:, a] |= student[a] & student
        active[b] = False
        labels[labels == b] = a
    result = np.full(n, -1, np.int64)
    result[exact] = labels
    if rest:
        # A small track beyond the exact set joins the nearest group it could belong to, if near enough.
        groups, group_of = np.unique(labels, return_inverse=True)
        by_group = np.zeros((m, len(groups)))
        by_group[np.arange(m), group_of] = 1
        rest_sums, rest_sizes = _sample_sums(samples, rest, exact)
        mean = (rest_sums @ by_group) / np.maximum(np.outer(rest_sizes, sizes_at_start @ by_group), 1)
        group_seen = (by_group.T @ seen) > 0  # the frames each group is seen in
        for row, k in enumerate(rest):
            mean[row, group_seen[:, cols[k]].any(axis=1)] = np.inf  # seen in the same frame as the group
        mean[np.outer(rest_sizes == 0, np.ones(len(groups), bool))] = np.inf
        nearest = np.argmin(mean, axis=1)
        for row, k in enumerate(rest):
            result[k] = groups[nearest[row]] if mean[row, nearest[row]] < threshold else n + k
    _, dense = np.unique(result, return_inverse=True)
    return dense


def _sample_sums(samples: list[list[np.ndarray]], rows: list[int], cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """sums[i, j]: total distance between the sampled descriptors of nodes rows[i] and cols[j];
    sizes[i]: how many descriptors rows[i] has."""
    sizes = np.array([len(samples[k]) for k in rows], np.float64)
    col_sizes = np.array([len(samples[k]) for k in cols], np.float64)
    a = [e for k in rows for e in samples[k]]
    b = [e for k in cols for e in samples[k]]
    sums = np.zeros((len(rows), len(cols)))
    if a and b:
        d = _pairwise(np.asarray(a, np.float32), np.asarray(b, np.float32)).astype(np.float64)
        row_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        col_starts = np.concatenate([[0], np.cumsum(col_sizes)[:-1]]).astype(int)
        by_row = np.add.reduceat(d, row_starts[sizes > 0], axis=0) if d.size else d
        full = np.zeros((len(rows), d.shape[1]))
        full[sizes > 0] = by_row
        by_col = np.add.reduceat(full, col_starts[col_sizes > 0], axis=1)
        sums[:, col_sizes > 0] = by_col
    return sums, sizes


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0))
