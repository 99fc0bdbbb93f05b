"""A lecture hall composed from photos of real people, with its ground truth.

Six rows of six seats seen from the front of the room: faces ~40 px wide in the back row and
~120 px in the front row of a 1920x1080 frame. Everyone sways, turns (a horizontal squash),
tilts and leans (scale); some look down at a laptop for seconds (the face is hidden behind the
lid); the lights dim for a while; the camera shakes; some students arrive late, leave early,
pop in briefly or never come, and strangers (people not enrolled) sit among them. The video is
written as a phone would store it: H.264, 30 frames/s, a keyframe every 30 frames, no B-frames.

Each person is a folder of photos (as in ../shared/people): `1.*` is the enrollment photo, and
the video shows a *different* photo of them. Everything is decided by the seed: the same seed
gives the same seating, events, truth and pixels; another seed gives another class.

The truth says, for every video frame, whose face is visible and where (left, top, right,
bottom); `expected()` applies the project's attendance rule (`attendance.tally`) to it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from p2p_attendance.compute.video import VideoInfo, read_image_rgb

HALL_SIZE = (1920, 1080)
ROWS, SEATS_PER_ROW = 6, 6
BACK_FACE_PX, FRONT_FACE_PX = 40, 120
SHAKE_MARGIN = 24  # px of backdrop around the frame, so the camera can shake without borders
PHOTO_SIDE = 640  # photos are searched for their face at most this large (cached per process)

# What happens to whom, with the share of the lecture it happens at. A seed picks who.
STRANGERS = 3
NEVER_CAME = 3

_photo_cache: dict[str, tuple[np.ndarray, tuple[int, int, int, int]] | None] = {}


@dataclass(frozen=True)
class HallPerson:
    """One person of a composed hall: their photos, role, seat and times in view."""
    id: str  # the folder's name, slugified as enrollment does
    folder: Path
    video_photo: Path  # a photo other than the enrollment photo
    enrolled: bool  # False: a stranger
    role: str  # "all", "late", "early", "visitor", "never", "stranger"
    seat: int | None  # row * SEATS_PER_ROW + column; None when they never come
    start_s: float = 0.0
    end_s: float = 0.0
    down: tuple[tuple[float, float], ...] = ()  # looking down at a laptop: face hidden

    @property
    def enroll_photo(self) -> Path:
        return next(p for p in sorted(self.folder.iterdir()) if p.stem == "1")

    def in_room(self, t: float) -> bool:
        return self.seat is not None and self.start_s <= t < self.end_s

    def looking_down(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.down)


@dataclass
class HallTruth:
    """What a composed hall shows, frame by frame: who is where, when the lights are dimmed."""
    seed: int
    duration_s: float
    fps: int
    size: tuple[int, int]
    people: list[HallPerson]
    dim: tuple[float, float]  # seconds in which the lights are dimmed
    frames: list[dict[str, tuple[int, int, int, int]]] = field(default_factory=list)  # per video frame

    @property
    def students(self) -> list[HallPerson]:
        return [p for p in self.people if p.enrolled]

    @property
    def strangers(self) -> list[HallPerson]:
        return [p for p in self.people if not p.enrolled]

    def frame_index(self, time_s: float) -> int:
        """The video frame a sampled frame's time_s (rounded to ms by the sampler) stands for."""
        return min(len(self.frames) - 1, max(0, round(time_s * self.fps)))

    def visible_at(self, time_s: float) -> dict[str, tuple[int, int, int, int]]:
        return self.frames[self.frame_index(time_s)]

    def video_info(self, path: str = "") -> VideoInfo:
        return VideoInfo(path, float(self.fps), len(self.frames), *self.size)

    def sampled(self, sample_fps: float) -> list[tuple[int, float, dict[str, tuple[int, int, int, int]]]]:
        """(sample index, time_s, visible faces) for each frame the app samples at sample_fps."""
        info = self.video_info()
        out = []
        for index in range(info.sample_count(sample_fps)):
            frame = info.source_frame(index, sample_fps)
            out.append((index, round(frame / self.fps, 3), self.frames[frame]))
        return out

    def expected(self, sample_fps: float = 1.0) -> dict[str, dict]:
        """Per enrolled student under the project's attendance rule, applied to what is visible in
        the sampled frames: status, presence, first/last seen (s) and frames visible."""
        from p2p_attendance.attendance.model import Face, FrameResult, Student
        from p2p_attendance.attendance.tally import tally

        enrolled = {p.id for p in self.students}
        results = [
            FrameResult(index, time_s, tuple(Face(box, pid if pid in enrolled else None, 0.0) for pid, box in faces.items()))
            for index, time_s, faces in self.sampled(sample_fps)
        ]
        students = [Student(p.id, p.id) for p in self.students]
        rows, _, _, _ = tally(results, students, self.duration_s, cluster_unknowns=False)
        return {
            s.id: {"status": s.status, "presence": s.presence, "first": s.first_seen_s, "last": s.last_seen_s, "frames": s.frames_seen}
            for s in rows
        }

    def strangers_seen(self, sample_fps: float = 1.0, min_frames: int = 3) -> int:
        """Strangers visible in at least min_frames sampled frames (the report drops shorter ones)."""
        counts = {p.id: 0 for p in self.strangers}
        for _, _, faces in self.sampled(sample_fps):
            for pid in faces:
                if pid in counts:
                    counts[pid] += 1
        return sum(c >= min_frames for c in counts.values())

    def write_enrollment(self, folder: str | os.PathLike) -> Path:
        """An enrollment folder (one sub-folder per student, its `1.*` photo) as links to the
        people's photos: nothing is copied."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for person in self.students:
            target = folder / person.id
            target.mkdir(exist_ok=True)
            link = target / person.enroll_photo.name
            if not link.exists():
                try:
                    link.symlink_to(person.enroll_photo.resolve())
                except OSError:  # no symlinks (Windows without rights): a copy in the caller's folder
                    link.write_bytes(person.enroll_photo.read_bytes())
        return folder


def people_folders(people_dir: str | os.PathLike) -> list[Path]:
    """The person folders that have an enrollment photo `1.*` and at least one other photo."""
    out = []
    for folder in sorted(Path(people_dir).iterdir()):
        if not folder.is_dir():
            continue
        photos = [p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
        if any(p.stem == "1" for p in photos) and any(p.stem != "1" for p in photos):
            out.append(folder)
    return out


def _face_photo(path: Path, engine) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """(photo at most PHOTO_SIDE large, box of its largest face), or None without a face."""
    key = str(path)
    if key not in _photo_cache:
        rgb = read_image_rgb(path)
        found = None
        if rgb is not None:
            scale = min(1.0, PHOTO_SIDE / max(rgb.shape[:2]))
            if scale < 1.0:
                rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            boxes = [box for box, _ in engine.detect(rgb)]
            if boxes:
                found = (rgb, max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])))
        _photo_cache[key] = found
    return _photo_cache[key]


def plan_hall(people_dir: str | os.PathLike, engine, seed: int, duration_s: float = 24.0, fps: int = 30) -> HallTruth:
    """Who sits where and what happens when, for this seed (no pixels yet)."""
    rng = np.random.default_rng(seed)
    folders = people_folders(people_dir)
    order = [folders[i] for i in rng.permutation(len(folders))]
    d = duration_s
    chosen: list[tuple[Path, Path, int]] = []  # (folder, video photo, source face width)
    for folder in order:
        probes = sorted(p for p in folder.iterdir() if p.stem != "1" and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for probe in [probes[i] for i in rng.permutation(len(probes))]:
            found = _face_photo(probe, engine)
            if found is not None:
                box = found[1]
                chosen.append((folder, probe, box[2] - box[0]))
                break
    if len(chosen) < STRANGERS + NEVER_CAME + 6:
        raise ValueError(f"too few usable people in {people_dir}: {len(chosen)}")

    roles = ["stranger"] * STRANGERS + ["never"] * NEVER_CAME + ["late", "late", "early", "early", "visitor"]
    roles += ["all"] * (len(chosen) - len(roles))
    seats_used = min(ROWS * SEATS_PER_ROW, sum(r != "never" for r in roles))
    seats = sorted(rng.choice(ROWS * SEATS_PER_ROW, seats_used, replace=False))  # back rows first
    # Small source faces (LFW crops) go to the back rows, where the camera sees them small too.
    comers = [i for i, r in enumerate(roles) if r != "never"][:seats_used]
    by_size = sorted(comers, key=lambda i: chosen[i][2] * rng.uniform(0.8, 1.25))
    seat_of = {i: int(s) for i, s in zip(by_size, seats)}

    from p2p_attendance.roster.store import slugify

    people = []
    for i, ((folder, probe, _), role) in enumerate(zip(chosen, roles)):
        start, end = 0.0, d
        if role == "late":  # one arrives early enough to be present, one for the last 15 %
            start = d * (rng.uniform(0.2, 0.3) if sum(r == "late" for r in roles[:i]) == 0 else rng.uniform(0.82, 0.88))
        elif role == "early":  # one leaves late enough to be present, one after a fifth
            end = d * (rng.uniform(0.72, 0.8) if sum(r == "early" for r in roles[:i]) == 0 else rng.uniform(0.15, 0.22))
        elif role == "visitor":
            start = d * rng.uniform(0.35, 0.5)
            end = start + d * rng.uniform(0.06, 0.1)
        down: list[tuple[float, float]] = []
        if role in ("all", "stranger", "late", "early") and rng.random() < 0.55:
            for _ in range(int(rng.integers(1, 3))):
                length = rng.uniform(2.0, 4.5) if rng.random() < 0.8 else rng.uniform(5.0, 7.0)
                length = min(length, 0.35 * d)  # short test halls are not all heads down
                a = rng.uniform(start, max(start, end - length))
                down.append((round(a, 3), round(min(end, a + length), 3)))
        people.append(HallPerson(
            slugify(folder.name), folder, probe, role != "stranger", role,
            seat_of.get(i), round(start, 3), round(end, 3), tuple(sorted(down)),
        ))
    dim_start = d * rng.uniform(0.45, 0.6)
    return HallTruth(seed, d, fps, HALL_SIZE, people, (round(dim_start, 3), round(dim_start + d * 0.2, 3)))


# -- rendering -------------------------------------------------------------------------------------
def _row_geometry(size=HALL_SIZE) -> list[tuple[float, float, float]]:
    """(face width px, face centre y, row width px) per row, back row first."""
    rows, y = [], 110.0
    for r in range(ROWS):
        width = BACK_FACE_PX + (FRONT_FACE_PX - BACK_FACE_PX) * r / (ROWS - 1)
        if r:
            y += 0.5 * rows[-1][0] + 1.25 * width + 8  # the head in front stays below the chin behind
        rows.append((width, y, size[0] * (0.6 + 0.35 * r / (ROWS - 1))))
    return rows


def seat_position(seat: int, size=HALL_SIZE) -> tuple[float, float, float]:
    """(face centre x, y, face width) of a seat; alternate rows are staggered by a quarter seat."""
    row, col = divmod(seat, SEATS_PER_ROW)
    width, y, row_width = _row_geometry(size)[row]
    x = size[0] / 2 + (col - (SEATS_PER_ROW - 1) / 2 + (0.25 if row % 2 else -0.25)) * row_width / SEATS_PER_ROW
    return x, y, width


@dataclass
class _Sprite:
    tile: np.ndarray  # head and shoulders, RGBA uint8 (A: a soft-edged ellipse): one warp moves both
    anchor: tuple[float, float]  # face centre in the tile
    face: tuple[float, float]  # face width, height in the tile
    motion: np.ndarray  # per-person random phases and amplitudes


def _sprite(rgb: np.ndarray, box, face_px: float, rng) -> _Sprite:
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    height, width = rgb.shape[:2]
    x0, x1 = max(0, int(left - 0.5 * w)), min(width, int(right + 0.5 * w))
    y0, y1 = max(0, int(top - 0.55 * h)), min(height, int(bottom + 0.8 * h))
    scale = face_px / w
    crop = rgb[y0:y1, x0:x1]
    tile = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    th, tw = tile.shape[:2]
    ax, ay = ((left + right) / 2 - x0) * scale, ((top + bottom) / 2 - y0) * scale
    alpha = np.zeros((th, tw), np.float32)
    axes = (max(2, int(min(ax, tw - ax) * 0.98)), max(2, int(max(ay, th - ay) * 0.98)))
    cv2.ellipse(alpha, (int(ax), int(ay)), axes, 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, face_px / 25))
    rgba = np.dstack([tile, np.round(alpha * 255).astype(np.uint8)])
    motion = np.array([rng.uniform(0, 2 * math.pi, 6), [
        rng.uniform(0.03, 0.09) * face_px,  # sway (px)
        rng.uniform(2, 7),  # tilt (degrees)
        rng.uniform(0.1, 0.3),  # turn: horizontal squash at its deepest
        rng.uniform(0.03, 0.07),  # lean: scale change
        rng.uniform(0.1, 0.35),  # motion speed (Hz)
        rng.uniform(0.02, 0.05) * face_px,  # bob (px)
    ]])
    return _Sprite(rgba, (ax, ay), (w * scale, h * scale), motion)


def _pose(sprite: _Sprite, t: float) -> tuple[float, float, float, float, float]:
    """(dx, dy, degrees, x scale, scale) of a person at time t: smooth, person-specific motion."""
    phase, amp = sprite.motion
    f = amp[4]
    dx = amp[0] * math.sin(2 * math.pi * f * t + phase[0])
    dy = amp[5] * math.sin(2 * math.pi * 0.7 * f * t + phase[1])
    degrees = amp[1] * math.sin(2 * math.pi * 0.8 * f * t + phase[2])
    turn = 1 - amp[2] * max(0.0, math.sin(2 * math.pi * 0.5 * f * t + phase[3])) ** 2
    scale = 1 + amp[3] * math.sin(2 * math.pi * 0.3 * f * t + phase[4])
    return dx, dy, degrees, turn, scale


def _draw(frame: np.ndarray, sprite: _Sprite, cx: float, cy: float, pose, down: bool) -> tuple[int, int, int, int] | None:
    """Paste the sprite with its face centre at (cx, cy); the face's box, or None when hidden."""
    dx, dy, degrees, turn, scale = pose
    sy = scale * (0.7 if down else 1.0)  # a head bent forward is foreshortened
    cx, cy = cx + dx, cy + dy + (0.25 * sprite.face[1] * scale if down else 0.0)
    theta = math.radians(degrees)
    a, b = math.cos(theta), math.sin(theta)
    linear = np.array([[a, -b], [b, a]]) @ np.diag([scale * turn, sy])
    th, tw = sprite.tile.shape[:2]
    corners = (np.array([[0, 0], [tw, 0], [0, th], [tw, th]], np.float64) - sprite.anchor) @ linear.T + (cx, cy)
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(frame.shape[1], x1), min(frame.shape[0], y1)
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    offset = (cx, cy) - linear @ np.asarray(sprite.anchor) - (fx0, fy0)
    matrix = np.hstack([linear, offset[:, None]])
    roi_size = (fx1 - fx0, fy1 - fy0)
    warped = cv2.warpAffine(sprite.tile, matrix, roi_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = warped[..., 3].astype(np.float32) * (1 / 255)
    roi = frame[fy0:fy1, fx0:fx1]
    roi[:] = cv2.blendLinear(np.ascontiguousarray(warped[..., :3]), roi, alpha, 1 - alpha)
    fw, fh = sprite.face[0] * scale * turn, sprite.face[1] * sy
    if down:  # a laptop lid in front of the face, from the eyes down
        lid_top = int(cy - 0.2 * fh)
        lid = (int(cx - 0.8 * fw), lid_top, int(cx + 0.8 * fw), int(cy + 1.3 * fh))
        cv2.rectangle(frame, lid[:2], lid[2:], (62, 64, 70), -1)
        cv2.rectangle(frame, (lid[0] + 2, lid[1] + 2), (lid[2] - 2, lid[3]), (160, 162, 170), -1)
        return None
    box = (int(round(cx - fw / 2)), int(round(cy - fh / 2)), int(round(cx + fw / 2)), int(round(cy + fh / 2)))
    inside = box[0] >= 0 and box[1] >= 0 and box[2] < frame.shape[1] and box[3] < frame.shape[0]
    return box if inside else None


def _backdrop(size, rng) -> np.ndarray:
    """The room behind the people: a wall and a desk under each row, with a margin for shake."""
    w, h = size[0] + 2 * SHAKE_MARGIN, size[1] + 2 * SHAKE_MARGIN
    wall = np.linspace(150, 95, h, dtype=np.float32)[:, None, None] * np.array([1.0, 0.95, 0.85], np.float32)
    room = np.broadcast_to(wall, (h, w, 3)).copy()
    for width, y, row_width in _row_geometry(size):
        top = int(y + 0.95 * width) + SHAKE_MARGIN
        x0 = int(size[0] / 2 - row_width / 2 - 0.6 * width) + SHAKE_MARGIN
        x1 = int(size[0] / 2 + row_width / 2 + 0.6 * width) + SHAKE_MARGIN
        room[top : top + int(0.45 * width), x0:x1] = (96, 70, 48)  # desk edge
    room += rng.normal(0, 3, (h, w, 1)).astype(np.float32)  # plaster texture
    return np.clip(room, 0, 255).astype(np.uint8)


def _shake(n: int, fps: int, duration_s: float, rng) -> np.ndarray:
    """Camera offset (dx, dy) per frame: a slow drift of a few px, and a 1.5 s shaky stretch."""
    walk = np.cumsum(rng.normal(0, 0.6, (n, 2)), axis=0)
    walk = np.clip(walk - walk.mean(0), -6, 6)
    start = int(rng.uniform(0.2, 0.8) * duration_s * fps)
    burst = slice(start, min(n, start + int(1.5 * fps)))
    walk[burst] += rng.normal(0, 5, (len(walk[burst]), 2))
    return np.clip(np.round(walk), -SHAKE_MARGIN + 1, SHAKE_MARGIN - 1).astype(int)


def compose_hall(
    path: str | os.PathLike, people_dir: str | os.PathLike, engine, seed: int = 1, duration_s: float = 24.0, fps: int = 30,
    gop: int = 30, crf: int = 24,
) -> HallTruth:
    """Write the hall video (phone-like H.264 in MP4) and return its truth."""
    import av

    truth = plan_hall(people_dir, engine, seed, duration_s, fps)
    rng = np.random.default_rng([seed, 1])  # pixels' own stream: the plan does not shift with rendering changes
    size = truth.size
    sprites: dict[str, tuple[_Sprite, float, float]] = {}
    for person in sorted((p for p in truth.people if p.seat is not None), key=lambda p: p.seat):  # back rows drawn first
        cx, cy, face_px = seat_position(person.seat, size)
        rgb, box = _face_photo(person.video_photo, engine)
        sprites[person.id] = (_sprite(rgb, box, face_px, rng), cx, cy)
    room = _backdrop(size, rng)
    n = int(round(duration_s * fps))
    shake = _shake(n, fps, duration_s, rng)
    noise = [rng.integers(0, 5, (size[1], size[0], 3), dtype=np.uint8) for _ in range(3)]
    by_id = {p.id: p for p in truth.people}

    container = av.open(str(path), "w")
    try:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.thread_count = 1  # one core: the machines running this are shared
        stream.codec_context.options = {"bf": "0", "preset": "superfast", "crf": str(crf), "keyint_min": str(gop), "sc_threshold": "0"}
        for k in range(n):
            t = k / fps
            ox, oy = shake[k]
            frame = room[SHAKE_MARGIN + oy : SHAKE_MARGIN + oy + size[1], SHAKE_MARGIN + ox : SHAKE_MARGIN + ox + size[0]].copy()
            visible = {}
            for pid, (sprite, cx, cy) in sprites.items():
                person = by_id[pid]
                if not person.in_room(t):
                    continue
                box = _draw(frame, sprite, cx - ox, cy - oy, _pose(sprite, t), person.looking_down(t))
                if box is not None:
                    visible[pid] = box
            gain = 1.0 + 0.04 * math.sin(2 * math.pi * t / max(duration_s, 1.0))  # daylight drifts
            if truth.dim[0] <= t < truth.dim[1]:
                ramp = min(1.0, (t - truth.dim[0]) / 0.7, (truth.dim[1] - t) / 0.7)
                gain *= 1 - 0.6 * max(0.0, ramp)  # the lights go down to 40 %
            image = cv2.convertScaleAbs(frame, alpha=gain) if abs(gain - 1) > 0.005 else frame
            image = cv2.add(image, noise[k % len(noise)])  # sensor noise, new every frame
            truth.frames.append(visible)
            yuv = cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420)  # as FFmpeg's swscale, at a fraction of its cost
            for packet in stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return truth
