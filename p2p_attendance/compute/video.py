"""Reading a lecture video: sampled frames, decoded one at a time (memory stays flat).

Video is read with PyAV (FFmpeg's demuxer and decoders), not OpenCV's VideoCapture, because the
requester must not decode every frame: a 30 frame/s lecture sampled once a second would cost 30
decodes per sampled frame, more CPU than a volunteer spends recognising the faces in it. PyAV
shows each packet before it is decoded, so the sampler decodes only what a sampled frame needs
(docs/benchmarks.md):

- Each sample index i owns a slot of source frames, [i, i + 1) / sample_fps seconds. If a
  keyframe falls inside the slot, that keyframe is the sample: one decode, no others; none at
  all for an H.264/HEVC video when the caller takes keyframes coded (`passthrough_bytes`: the
  volunteer decodes them, `decode_keyframe_rgb`).
- Otherwise the slot's first frame is the sample, decoded from its group's keyframe (or onward
  from the decoder's position when that is nearer), never from the start of the file.
Packets wait in a small buffer (one group of pictures at most) until the slot is decided, and
long skips (resume, re-checks) seek. The choice depends on the file alone, so the same index gives
the same frame every time: resume and the requester's re-checks rely on that.
"""
from __future__ import annotations

import hashlib
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

from p2p_attendance.compute.limits import MAX_FRAME_PIXELS, MAX_FRAME_SIDE, PASSTHROUGH_CODECS
from p2p_attendance.errors import VideoError

DEFAULT_SAMPLE_FPS = 1.0
SEEK_AFTER_S = 10.0  # a gap longer than this to the next wanted slot is skipped by seeking
MAX_BAD_PACKETS = 50  # undecodable packets in a row before the rest of the file is given up


@dataclass(frozen=True)
class VideoInfo:
    """What probe_video learned of a video: size, rate, frame count, codec and orientation."""

    path: str
    fps: float
    frame_count: int
    width: int
    height: int
    codec: str = ""  # FFmpeg's decoder name, e.g. "h264"
    extradata: bytes | None = None  # the decoder's set-up (H.264 SPS/PPS) when the container keeps it apart
    pixel_format: str = ""  # of the decoded pictures, e.g. "yuv420p"
    rotation: int = 0  # degrees clockwise that make a decoded picture upright (phones store this apart)

    @property
    def passthrough_ok(self) -> bool:
        """Whether coded keyframes may travel as they are: a decoder that is bit-exact by
        specification, and pictures every peer turns into the same RGB (no rotation, and 8-bit
        4:2:0 with even sides, which OpenCV converts; swscale's other paths may differ by CPU)."""
        return (
            self.codec in PASSTHROUGH_CODECS and self.rotation == 0 and self.pixel_format == "yuv420p"
            and self.width % 2 == 0 and self.height % 2 == 0
        )

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps

    def sample_count(self, sample_fps: float) -> int:
        """How many frames are sampled at sample_fps (the first one at t = 0)."""
        return max(1, math.ceil(self.duration_s * sample_fps - 1e-9))

    def source_frame(self, sample_index: int, sample_fps: float) -> int:
        """The first source frame of a sample's slot."""
        return min(self.frame_count - 1, round(sample_index * self.fps / sample_fps))

    def slot(self, sample_index: int, sample_fps: float) -> tuple[int, int]:
        """Source frames [first, end) that sample_index may take its frame from."""
        first = self.source_frame(sample_index, sample_fps)
        return first, max(first + 1, self.source_frame(sample_index + 1, sample_fps))


def _open(path: str):
    """(container, video stream) with a single-threaded decoder: FFmpeg's frame threads cost 2.4x
    the CPU per frame (measured), and the requester's CPU is what limits how many peers it feeds."""
    name = os.path.basename(path)
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(f"Cannot open {name}: not a video, or a format this app cannot read.") from exc
    if container.format.name in ("image2", "image2pipe") or container.format.name.endswith("_pipe"):
        # FFmpeg reads a photo as a one-frame "video" (jpeg_pipe, png_pipe...): say what it is.
        container.close()
        raise VideoError(f"{name} is a still image, not a video: choose the recording of the lecture (MP4, MOV, MKV, AVI...).")
    if not container.streams.video:
        container.close()
        raise VideoError(f"Cannot open {name}: it has no video in it.")
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1
    return container, stream


def _clockwise(image: av.VideoFrame) -> int:
    """Degrees clockwise to turn a decoded picture upright, from the display matrix phones write
    (FFmpeg gives it counter-clockwise); 0 when there is none or it is not a quarter turn."""
    angle = (-round(getattr(image, "rotation", 0) or 0)) % 360
    return angle if angle in (90, 180, 270) else 0


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open a video and read its VideoInfo; VideoError when it is missing or cannot be decoded."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"Video not found: {path}")
    container, stream = _open(path)
    name = os.path.basename(path)
    try:
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        count = stream.frames or round(duration * fps)
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError:
            first = None
        if first is None or fps <= 0 or count <= 0 or first.width <= 0:
            raise VideoError(f"Cannot read frames from {name}: the file is damaged or its codec is unsupported.")
        rotation = _clockwise(first)
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        context = stream.codec_context
        return VideoInfo(path, fps, int(count), width, height, context.name, context.extradata, first.format.name, rotation)
    finally:
        container.close()


def video_fingerprint(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """A cheap content hash (size + first and last MiB) that detects a changed video on resume."""
    digest = hashlib.sha256()
    size = os.path.getsize(path)
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(chunk))
        if size > chunk:
            handle.seek(max(chunk, size - chunk))
            digest.update(handle.read(chunk))
    return digest.hexdigest()[:32]


@dataclass
class SampledFrame:
    """One sampled frame: its index and time, as BGR pixels or as its coded keyframe."""

    index: int
    time_s: float
    bgr: np.ndarray | None  # None when `keyframe` carries the frame
    keyframe: bytes | None = None  # the coded keyframe itself (FrameSampler's passthrough)


def _nal_types(data: bytes, codec: str, length_size: int) -> Iterator[int]:
    """The NAL unit types in an H.264/HEVC packet: length-prefixed as in MP4/MKV (length_size
    bytes each), or with Annex B start codes as in MPEG-TS (length_size 0)."""
    shift, mask = (1, 0x3F) if codec == "hevc" else (0, 0x1F)
    if length_size:
        pos = 0
        while pos + length_size < len(data):
            size = int.from_bytes(data[pos : pos + length_size], "big")
            yield (data[pos + length_size] >> shift) & mask
            pos += length_size + size
        return
    pos = data.find(b"\x00\x00\x01")
    while 0 <= pos < len(data) - 3:
        yield (data[pos + 3] >> shift) & mask
        pos = data.find(b"\x00\x00\x01", pos + 3)


def random_access(packet: av.Packet, codec: str, extradata: bytes | None) -> bool:
    """Whether a packet flagged as a keyframe really starts a picture that decodes alone. For
    H.264 that is an IDR picture (NAL type 5) and for HEVC an IRAP one (16-23): streams with
    rolling intra refresh flag frames that are only partly intra-coded, which decode to garbage
    without what came before. Other codecs' flags are taken as they are."""
    if codec not in ("h264", "hevc"):
        return True
    length_size = 0
    if extradata and extradata[0] == 1:  # avcC / hvcC: NAL units are length-prefixed
        at = 21 if codec == "hevc" else 4  # where the record keeps lengthSizeMinusOne
        length_size = (extradata[at] & 3) + 1 if len(extradata) > at else 4
    wanted = range(16, 24) if codec == "hevc" else (5,)
    return any(kind in wanted for kind in _nal_types(bytes(packet), codec, length_size))


@dataclass
class _Packet:
    seq: int  # position in decode order since the last seek
    packet: av.Packet
    frame: int  # source frame index, from its presentation time
    key: bool


class _VideoDecoder:
    """Demuxes packets into a lookahead buffer and decodes only those a wanted frame needs.

    Invariant: the buffer starts with a keyframe, or with the packet that follows the last one
    fed to the decoder. Decoded frames wait in `ready`, in presentation order, until a later
    request passes them: a slot with no frame of its own (a gap, a file that does not start on a
    keyframe) gets the next frame, and the slot that frame belongs to gets it too.
    """

    def __init__(self, container, stream, fps: float):
        self.container, self.stream, self.fps = container, stream, fps
        self.codec = stream.codec_context
        self.codec_name, self.extradata = self.codec.name, self.codec.extradata
        self.time_base = stream.time_base or Fraction(1, 90000)
        self.start = stream.start_time or 0
        self.buffer: deque[_Packet] = deque()
        self.ready: deque[tuple[int, av.VideoFrame]] = deque()
        self.fed: int | None = None  # seq of the last packet fed to the decoder; None: flushed
        self.drained = False  # the decoder was emptied at the end of the file
        self.last_frame = -1  # source frame index of the last packet demuxed
        self.packets = self._demux()
        self.decode_count = 0
        self.bad_packets = 0  # in a row

    def _demux(self):
        seq = 0
        for packet in self.container.demux(self.stream):
            if packet.size == 0:
                continue  # PyAV's end-of-stream marker
            pts = packet.pts if packet.pts is not None else packet.dts
            frame = self.index_of(pts) if pts is not None else self.last_frame + 1
            key = bool(packet.is_keyframe) and random_access(packet, self.codec_name, self.extradata)
            yield _Packet(seq, packet, frame, key)
            seq += 1

    def index_of(self, pts: int) -> int:
        # int / int is correctly rounded, as float(Fraction) is: the same value, 20x cheaper per
        # packet (Python time a reader holds the GIL for: compute/frames_parallel.py)
        return round((pts - self.start) * self.time_base.numerator / self.time_base.denominator * self.fps)

    def pull(self, keep_from: int | None = None) -> _Packet | None:
        """Demux one packet into the buffer and return it; None at the end of the file. Packets
        before a keyframe at or before source frame keep_from are dropped: nothing wanted needs them."""
        entry = next(self.packets, None)
        if entry is None:
            return None
        self.last_frame = max(self.last_frame, entry.frame)
        if not self.buffer and not entry.key and not self._continues(entry):
            return entry  # after a seek or a skip: undecodable until the next keyframe
        if entry.key and keep_from is not None and entry.frame <= keep_from:
            self.buffer.clear()
        self.buffer.append(entry)
        return entry

    def forget_before(self, frame: int) -> None:
        """Drop the packets before the last buffered keyframe at or before `frame`: later samples
        lie after `frame` and can start there. Keeps the buffer to about one group of pictures."""
        last = None
        for position, entry in enumerate(self.buffer):
            if entry.key and entry.frame <= frame:
                last = position
        for _ in range(last or 0):
            self.buffer.popleft()

    def _continues(self, entry: _Packet) -> bool:
        return self.fed is not None and entry.seq == self.fed + 1

    def _reset(self) -> None:
        self.codec.flush_buffers()
        self.fed, self.drained = None, False
        self.ready.clear()

    def seek_to_frame(self, frame: int) -> None:
        """Seek so that demuxing starts at a keyframe at or before `frame`. Some containers (MPEG-TS)
        land after the target: then seek further back, and at worst from the start."""
        for back_s in (0.0, 2.0, 10.0, 60.0, None):
            target = 0 if back_s is None else max(0, frame - round(back_s * self.fps))
            self.container.seek(int(target / self.fps / self.time_base) + self.start, stream=self.stream, backward=True, any_frame=False)
            self.packets = self._demux()
            self.buffer.clear()
            self._reset()
            self.last_frame = target - 1
            while not self.buffer and self.pull() is not None:
                pass  # up to the first keyframe
            if target == 0 or not self.buffer or self.buffer[0].frame <= frame:
                return

    def frame_at_or_after(self, frame: int):
        """(index, picture) of the first frame at or after `frame`, decoding from the buffer and
        demuxing more as needed; None if the file ends first."""
        while self.ready and self.ready[0][0] < frame:
            self.ready.popleft()
        if self.ready or self.drained:
            return self.ready[0] if self.ready else None
        start = self._start_for(frame)
        while True:
            while start < len(self.buffer):
                entry = self.buffer[start]
                if not self._continues(entry):
                    self._reset()  # a jump: it begins at a keyframe (invariant of pull)
                self._take(self._decode(entry.packet), frame)
                self.fed = entry.seq
                start += 1
                if self.ready:
                    for _ in range(start):
                        self.buffer.popleft()
                    return self.ready[0]
            if self.pull() is None:
                self._take(self.codec.decode(None), frame)  # the frames held back for reordering
                self.buffer.clear()
                self.drained = True
                return self.ready[0] if self.ready else None

    def _decode(self, packet: av.Packet) -> list:
        self.decode_count += 1
        try:
            images = self.codec.decode(packet)
        except av.error.FFmpegError:
            self.bad_packets += 1  # a damaged packet: FFmpeg conceals what it can from the next ones
            if self.bad_packets > MAX_BAD_PACKETS:
                raise
            return []
        self.bad_packets = 0
        return images

    def _take(self, images, frame: int) -> None:
        for image in images:
            last = self.ready[-1][0] if self.ready else frame - 1  # ready frames are all >= frame
            index = self.index_of(image.pts) if image.pts is not None else last + 1
            if index > last:
                self.ready.append((index, image))

    def _start_for(self, frame: int) -> int:
        """Where in the buffer decoding begins for `frame`: at the last keyframe at or before it,
        else at the buffer's start (which continues the decoder's position: invariant of pull)."""
        start = 0
        for position, entry in enumerate(self.buffer):
            if entry.key and entry.frame <= frame:
                start = position
        return start


_TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def to_array(image: av.VideoFrame, rgb: bool = False, rotation: int = 0) -> np.ndarray:
    """A decoded picture as BGR (or RGB), turned `rotation` degrees clockwise."""
    if image.format.name == "yuv420p" and image.width % 2 == 0 and image.height % 2 == 0:  # 4x cheaper than swscale
        array = cv2.cvtColor(image.to_ndarray(), cv2.COLOR_YUV2RGB_I420 if rgb else cv2.COLOR_YUV2BGR_I420)
    else:
        array = image.to_ndarray(format="rgb24" if rgb else "bgr24")
    return cv2.rotate(array, _TURNS[rotation]) if rotation in _TURNS else array


class FrameSampler:
    """Yields the sampled frames in order, decoding only what each needs (see the module doc).

    `wanted` restricts to some sample indexes (resume, re-checks). If the file ends early (damaged
    video), iteration stops and `ended_early_at` says at which sample index.
    """

    def __init__(self, info: VideoInfo, sample_fps: float, wanted: Iterable[int] | None = None, passthrough_bytes: int = 0):
        """passthrough_bytes > 0: a sample that is a keyframe of a PASSTHROUGH_CODECS video, of at
        most that many bytes, comes as its coded packet (SampledFrame.keyframe), not decoded."""
        self.info = info
        self.sample_fps = sample_fps
        self.total = info.sample_count(sample_fps)
        self._wanted = sorted(set(wanted)) if wanted is not None else None
        self._passthrough = passthrough_bytes if info.passthrough_ok else 0
        self.ended_early_at: int | None = None
        self.decoded = 0  # packets decoded, for the benchmark

    def __iter__(self) -> Iterator[SampledFrame]:
        container, stream = _open(self.info.path)
        reader = _VideoDecoder(container, stream, self.info.fps)
        try:
            indexes = self._wanted if self._wanted is not None else range(self.total)
            for index in indexes:
                try:
                    found = self._sample(reader, index)
                except av.error.FFmpegError:
                    found = None
                self.decoded = reader.decode_count
                if found is None:
                    self.ended_early_at = index
                    return
                frame_index, image = found
                time_s = round(frame_index / self.info.fps, 3)
                if isinstance(image, bytes):
                    yield SampledFrame(index, time_s, None, image)
                else:
                    yield SampledFrame(index, time_s, to_array(image, rotation=self.info.rotation))
        finally:
            container.close()

    def _sample(self, reader: _VideoDecoder, index: int):
        first, end = self.info.slot(index, self.sample_fps)
        if first - reader.last_frame > SEEK_AFTER_S * self.info.fps:
            reader.seek_to_frame(first)
        # Demux until the slot is decided: keyframes come in presentation order, so once a packet
        # at or past the slot's end is seen, no keyframe inside the slot can follow.
        def decides(entry: _Packet) -> bool:
            return entry.frame >= end or (entry.key and entry.frame >= first)

        if not any(decides(e) for e in reader.buffer):
            while (entry := reader.pull(keep_from=first)) is not None and not decides(entry):
                pass
        key = next((e for e in reader.buffer if e.key and first <= e.frame < end), None)
        if key is not None and 0 < key.packet.size <= self._passthrough:
            reader.forget_before(key.frame)  # the keyframe stays: later samples may decode from it
            return key.frame, bytes(key.packet)
        found = reader.frame_at_or_after(key.frame if key is not None else first)
        if found is not None:
            reader.forget_before(found[0])
        return found


FULL_HD_JPEG_QUALITY = 80  # frames 1920 px wide: 40 % fewer bytes than 90, attendance unchanged (docs/benchmarks.md)
JPEG_QUALITY = 90  # smaller frames: their faces have fewer pixels, and at 80 a 720p hall lost a status


def jpeg_quality_for(width: int) -> int:
    """The JPEG quality a sampled frame of this width travels at (measured on composed halls)."""
    return FULL_HD_JPEG_QUALITY if width >= 1920 else JPEG_QUALITY


def encode_jpeg(bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """A BGR image as JPEG bytes at this quality (1-100)."""
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


MAX_DECODED_SIDE = MAX_FRAME_SIDE
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI: no length follows


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, read without decoding it; None for anything the
    decoder might read differently. Any number of 0xFF fill bytes may precede a marker (T.81
    B.1.1.2): a reader that took one for a marker would skip to a fake frame header of the
    attacker's choosing while the decoder reads the real one."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos < len(data) and data[pos] == 0xFF:
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos + 2 >= len(data):
            return None
        marker, pos = data[pos], pos + 1
        if marker in _STANDALONE_MARKERS:
            continue
        if marker in (0x00, 0xD9, 0xDA):  # a stuffed byte, end of image or a scan before any frame header
            return None
        length = int.from_bytes(data[pos : pos + 2], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 7 > len(data):
                return None
            return int.from_bytes(data[pos + 5 : pos + 7], "big"), int.from_bytes(data[pos + 3 : pos + 5], "big")
        if length < 2:
            return None
        pos += length
    return None


def decode_jpeg_rgb(data: bytes) -> np.ndarray:
    """Decode a JPEG from the network into RGB; raises ValueError on anything that is not one,
    and on one that claims to be huge (a few KB can declare 60000x60000 px: memory exhaustion)."""
    size = jpeg_size(data)
    if size is None or not (0 < size[0] <= MAX_DECODED_SIDE and 0 < size[1] <= MAX_DECODED_SIDE):
        raise ValueError(f"not a JPEG of at most {MAX_DECODED_SIDE} px a side")
    try:  # a volunteer's workers cap OpenCV's decoder at MAX_FRAME_PIXELS too (workers.cap_decoded_pixels)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ValueError(f"JPEG refused by the decoder: {exc}") from None
    if image is None:
        raise ValueError("not a JPEG image")
    if image.shape[0] > MAX_DECODED_SIDE or image.shape[1] > MAX_DECODED_SIDE or image.shape[0] * image.shape[1] > MAX_FRAME_PIXELS:
        raise ValueError(f"JPEG decoded at {image.shape[1]}x{image.shape[0]} px, over the limit")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_keyframe_rgb(codec: str, extradata: bytes | None, data: bytes) -> np.ndarray:
    """Decode one coded keyframe from the network into RGB; ValueError for anything else. Only
    PASSTHROUGH_CODECS, single-threaded, and FFmpeg refuses pictures over MAX_DECODED_SIDE² pixels
    before allocating them."""
    if codec not in PASSTHROUGH_CODECS:
        raise ValueError(f"keyframes of {codec!r} are not accepted")
    context = av.CodecContext.create(codec, "r")
    context.thread_count = 1
    context.options = {"max_pixels": str(MAX_FRAME_PIXELS), "flags2": "+showall"}
    if extradata:
        context.extradata = extradata
    try:
        images = [*context.decode(av.Packet(data)), *context.decode(None)]
    except (av.error.FFmpegError, ValueError) as exc:
        raise ValueError(f"not a {codec} keyframe ({exc})") from exc
    if not images or not (0 < images[0].width <= MAX_DECODED_SIDE and 0 < images[0].height <= MAX_DECODED_SIDE):
        raise ValueError(f"not a {codec} keyframe")
    if images[0].width * images[0].height > MAX_FRAME_PIXELS or context.width * context.height > MAX_FRAME_PIXELS:
        raise ValueError(f"{codec} keyframe over {MAX_FRAME_PIXELS} pixels")
    image = images[0]
    if image.format.name != "yuv420p" or image.width % 2 or image.height % 2:
        raise ValueError(f"keyframe pictures must be 8-bit 4:2:0 with even sides, not {image.format.name} {image.width}x{image.height}")
    return to_array(image, rgb=True)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray | None:
    """An image file as RGB, or None when it cannot be read (imread returns None silently)."""
    data = np.fromfile(os.fspath(path), np.uint8)  # fromfile + imdecode also handles non-ASCII paths on Windows
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
