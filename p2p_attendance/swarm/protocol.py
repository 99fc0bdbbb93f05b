"""The wire protocol between a requester (ROUTER) and its volunteers (DEALER): every message type,
its fields and limits, in one place. docs/protocol.md is the human-readable copy of this table.

A message is a ZeroMQ multipart: one JSON header, then raw binary parts (JPEG frames, float32
encodings). Nothing is ever unpickled or evaluated. decode() checks the size of every part, the
protocol version, the message type, every field's type and range, and the number of raw parts;
anything else raises ProtocolError, which the receiver counts, logs and drops.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from p2p_attendance import PROTOCOL_VERSION
from p2p_attendance.compute.limits import MAX_FACES_PER_FRAME, MAX_SEATS, MAX_UPSAMPLE, PASSTHROUGH_CODECS, seat_is_valid
from p2p_attendance.peertext import check_peer_text

MAX_HEADER_BYTES = 64 * 1024
MAX_JPEG_BYTES = 4 * 1024 * 1024  # a 4K frame at quality 90 is ~2 MB; also the limit for a coded keyframe
MAX_EXTRADATA_BYTES = 64 * 1024
MAX_FRAMES_PER_BATCH = 32
MAX_ROSTER_ROWS = 10_000
MAX_CREDIT = 64
ENCODING_BYTES = 128 * 4
MAX_CROP_BYTES = 64 * 1024

# Admission (docs/protocol.md, "Admission"): a few small messages over a raw TCP stream, each at
# most this long once packed. The requester reads them from a ZMQ_STREAM socket, which buffers
# raw bytes under its high-water mark; a ZMTP socket would buffer an endless multipart message
# from anyone who completed the handshake (with a throwaway key), however small MAXMSGSIZE is.
MAX_ADMISSION_BYTES = 1024
PAKE_MESSAGE_BYTES = 33  # a SPAKE2 element on Ed25519, with its side byte
CURVE_KEY_BYTES = 32
MAC_BYTES = 32

HEARTBEAT_S = 1.0
# A peer is gone after this many heartbeats of silence. Volunteers compute in separate processes,
# so their socket loop keeps answering even at 100% CPU; 3 s tolerates a Wi-Fi hiccup yet
# returns a dead peer's frames to the queue before the others run dry of prefetched work.
LIVENESS = 3
# ... unless a batch may be on its way to the volunteer (it has credit the requester has not
# used: once it works, nearly always): a message arrives only whole, and the requester's
# heartbeat waits behind the batches ahead of it on the same connection (on a saturated link
# one connection's share can take seconds to carry them; 32 volunteers on 100 Mbit/s rejoined
# 42 times in one job, each time losing the batches on their way). A dead connection is told by
# its end instead (the requester exited, or ZMTP heartbeats, which count every part that
# arrives, timed out: security.heartbeat_options). Not longer: a hostile requester can keep one
# endless message arriving, held whole by ZeroMQ, for this long (docs/security.md).
SILENCE_WHILE_OWED_S = 10.0


NOT_JOINED = "not joined"  # REJECT reason for a peer the requester no longer knows: HELLO again


def peek_type(header: bytes) -> str | None:
    """The type of a message that failed validation, to answer an old or new app's HELLO."""
    try:
        value = json.loads(bytes(header[:MAX_HEADER_BYTES]).decode("utf-8")).get("type")
        return value if isinstance(value, str) else None
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return None


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the receiver drops it."""


# Field specs: name -> (type, required). Types: "str", "int", "float", "bool", "list", "dict".
_STR = "str"
_INT = "int"
_NUM = "float"
_BOOL = "bool"
_LIST = "list"
_DICT = "dict"


@dataclass(frozen=True)
class MessageSpec:
    """The shape of one message type: its header fields (type, required), raw part count, direction."""

    fields: dict[str, tuple[str, bool]]
    parts: tuple[int, int] = (0, 0)  # min and max number of raw parts
    direction: str = ""


SPECS: dict[str, MessageSpec] = {
    "HELLO": MessageSpec(
        {"name": (_STR, True), "cores": (_INT, True), "app_version": (_STR, True)},
        direction="volunteer -> requester",
    ),
    "WELCOME": MessageSpec(
        {"job_id": (_STR, True), "params": (_DICT, True), "roster_ids": (_LIST, True), "heartbeat_s": (_NUM, True)},
        parts=(1, 1),
        direction="requester -> volunteer",
    ),
    "REJECT": MessageSpec({"reason": (_STR, True), "retry_after_s": (_NUM, False)}, direction="requester -> volunteer"),
    "READY": MessageSpec({"credit": (_INT, True)}, direction="volunteer -> requester"),
    "BATCH": MessageSpec(
        {"batch_id": (_INT, True), "frames": (_LIST, True), "codec": (_STR, False), "extradata": (_BOOL, False), "seats": (_LIST, False)},
        parts=(1, MAX_FRAMES_PER_BATCH + 1),
        direction="requester -> volunteer",
    ),
    "RESULT": MessageSpec(
        {"batch_id": (_INT, True), "frames": (_LIST, True), "busy_s": (_NUM, False)},
        parts=(1, 1 + MAX_FRAMES_PER_BATCH * MAX_FACES_PER_FRAME),
        direction="volunteer -> requester",
    ),
    "HEARTBEAT": MessageSpec({}, direction="both"),
    "BYE": MessageSpec({"reason": (_STR, False)}, direction="both"),
    "ERROR": MessageSpec({"batch_id": (_INT, False), "message": (_STR, True)}, direction="both"),
    # Admission, on the admission port: PAKE -> PAKE_REPLY -> CONFIRM -> ADMIT (or REJECT).
    "PAKE": MessageSpec({}, parts=(2, 2), direction="volunteer -> requester (admission)"),  # client key, SPAKE2 message
    "PAKE_REPLY": MessageSpec({}, parts=(1, 1), direction="requester -> volunteer (admission)"),  # SPAKE2 message
    "CONFIRM": MessageSpec({}, parts=(1, 1), direction="volunteer -> requester (admission)"),  # the volunteer's MAC
    "ADMIT": MessageSpec({"data_port": (_INT, True)}, parts=(1, 1), direction="requester -> volunteer (admission)"),  # its MAC
}

_PY_TYPES = {_STR: str, _INT: int, _NUM: (int, float), _BOOL: bool, _LIST: list, _DICT: dict}


@dataclass
class Message:
    """A decoded, validated message: its type, header fields and raw parts."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    parts: list[bytes] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def encode(msg_type: str, parts: list[bytes] | None = None, **fields: Any) -> list[bytes]:
    """Header + raw parts, ready for send_multipart. Validates what we send as strictly as what we
    receive, so a bug on our side shows up here and not as a rejected message on a peer."""
    header = json.dumps({"v": PROTOCOL_VERSION, "type": msg_type, **fields}, separators=(",", ":")).encode()
    frames = [header, *(parts or [])]
    decode(frames)
    return frames


def decode(frames: list[bytes]) -> Message:
    """Parse and validate a received multipart message against SPECS; ProtocolError for anything malformed."""
    if not frames:
        raise ProtocolError("empty message")
    header_bytes = bytes(frames[0])
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(header_bytes)} bytes is over the limit")
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # deep nesting recurses
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    version, msg_type = header.pop("v", None), header.pop("type", None)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r}, expected {PROTOCOL_VERSION}")
    spec = SPECS.get(msg_type) if isinstance(msg_type, str) else None
    if spec is None:
        raise ProtocolError(f"unknown message type {msg_type!r}")
    for name, value in header.items():
        if name not in spec.fields:
            raise ProtocolError(f"{msg_type}: unexpected field {name!r}")
        kind = spec.fields[name][0]
        if not isinstance(value, _PY_TYPES[kind]) or (kind != _BOOL and isinstance(value, bool)):
            raise ProtocolError(f"{msg_type}: field {name!r} should be {kind}")
        if kind == _NUM and not math.isfinite(value):
            raise ProtocolError(f"{msg_type}: field {name!r} is not finite")
    missing = [n for n, (_, required) in spec.fields.items() if required and n not in header]
    if missing:
        raise ProtocolError(f"{msg_type}: missing {', '.join(missing)}")
    parts = [bytes(p) for p in frames[1:]]
    if not spec.parts[0] <= len(parts) <= spec.parts[1]:
        raise ProtocolError(f"{msg_type}: {len(parts)} raw parts, expected {spec.parts[0]}..{spec.parts[1]}")
    message = Message(msg_type, header, parts)
    _CHECKS.get(msg_type, lambda m: None)(message)
    return message


def _text(value: Any, what: str, limit: int = 200) -> None:
    try:
        check_peer_text(value, limit, what)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None


def _check_hello(m: Message) -> None:
    _text(m["name"], "HELLO name", 100)
    _text(m["app_version"], "HELLO app_version", 40)
    if not 1 <= m["cores"] <= 1024:
        raise ProtocolError("HELLO cores out of range")


def _check_welcome(m: Message) -> None:
    _text(m["job_id"], "WELCOME job_id", 64)
    ids = m["roster_ids"]
    if len(ids) > MAX_ROSTER_ROWS:
        raise ProtocolError("WELCOME roster_ids invalid")
    for student_id in ids:
        _text(student_id, "WELCOME roster id")
    if len(m.parts[0]) != len(ids) * ENCODING_BYTES:
        raise ProtocolError("WELCOME roster encodings do not match roster_ids")
    params = m["params"]
    for key, kind, low, high in (("tolerance", _NUM, 0.0, 2.0), ("upsample", _INT, 0, MAX_UPSAMPLE), ("min_score", _NUM, -5.0, 5.0)):
        value = params.get(key)
        if not isinstance(value, _PY_TYPES[kind]) or isinstance(value, bool) or not low <= value <= high:
            raise ProtocolError(f"WELCOME params.{key} invalid")
    if not 0.1 <= m["heartbeat_s"] <= 30:
        raise ProtocolError("WELCOME heartbeat_s out of range")


def _check_ready(m: Message) -> None:
    if not 0 <= m["credit"] <= MAX_CREDIT:
        raise ProtocolError("READY credit out of range")


MAX_FRAME_TOKEN = 2**53  # exact in every JSON reader


def _frame_entry(entry: Any, what: str, keys: set[str]) -> int:
    """A frame's entry names it by an opaque token, never by its index or time: a volunteer cannot
    tell a check copy from any other batch, nor which part of the lecture it is looking at."""
    if not isinstance(entry, dict) or not set(entry) <= keys:
        raise ProtocolError(f"{what} frame entry invalid")
    token = entry.get("token")
    if not isinstance(token, int) or isinstance(token, bool) or not 0 <= token < MAX_FRAME_TOKEN:
        raise ProtocolError(f"{what} frame token invalid")
    return token


def _check_batch(m: Message) -> None:
    frames = m["frames"]
    codec, extradata = m.get("codec"), bool(m.get("extradata", False))
    if codec is not None and codec not in PASSTHROUGH_CODECS:
        raise ProtocolError("BATCH codec not accepted")
    if extradata and codec is None:
        raise ProtocolError("BATCH extradata without a codec")
    if not 1 <= len(frames) <= MAX_FRAMES_PER_BATCH or len(frames) + extradata != len(m.parts):
        raise ProtocolError("BATCH frames do not match its parts")
    for entry in frames:
        _frame_entry(entry, "BATCH", {"token", "keyframe"})
        keyframe = entry.get("keyframe", False)
        if not isinstance(keyframe, bool) or (keyframe and codec is None):
            raise ProtocolError("BATCH frame keyframe flag invalid")
    if any(len(p) > MAX_JPEG_BYTES or len(p) == 0 for p in m.parts[: len(frames)]):
        raise ProtocolError("BATCH frame part empty or too large")
    if extradata and len(m.parts[-1]) > MAX_EXTRADATA_BYTES:
        raise ProtocolError("BATCH extradata too large")
    seats = m.get("seats", [])
    if len(seats) > MAX_SEATS:
        raise ProtocolError("BATCH has too many seats")
    if not all(isinstance(seat, list) and seat_is_valid(seat) for seat in seats):
        raise ProtocolError("BATCH seat invalid")


def batch_frames(m: Message) -> tuple[list[bytes], tuple[str, bytes | None] | None]:
    """A checked BATCH's frame parts, and (codec, extradata) when some are coded keyframes."""
    frames = m.parts[: len(m["frames"])]
    codec = m.get("codec")
    return frames, (codec, m.parts[-1] if m.get("extradata") else None) if codec is not None else None


def batch_seats(m: Message) -> tuple[tuple[int, int, int, int], ...]:
    """A checked BATCH's seats: boxes (left, top, right, bottom) where faces were seen so far in the job."""
    return tuple(tuple(seat) for seat in m.get("seats", []))


def _check_result(m: Message) -> None:
    frames = m["frames"]
    if not 1 <= len(frames) <= MAX_FRAMES_PER_BATCH:
        raise ProtocolError("RESULT frame count out of range")
    face_count = 0
    for entry in frames:
        _frame_entry(entry, "RESULT", {"token", "faces"})
        faces = entry.get("faces")
        if not isinstance(faces, list) or len(faces) > MAX_FACES_PER_FRAME:
            raise ProtocolError("RESULT faces invalid")
        face_count += len(faces)  # each entry's content: swarm/wire.py parse_result
    if len(m.parts[0]) != face_count * ENCODING_BYTES:
        raise ProtocolError("RESULT encodings do not match its faces")
    crops = m.parts[1:]
    if crops and len(crops) != face_count or any(len(c) > MAX_CROP_BYTES for c in crops):
        raise ProtocolError("RESULT crops do not match its faces")
    busy = m.get("busy_s", 0.0)
    if not 0 <= busy < 3600:
        raise ProtocolError("RESULT busy_s out of range")


def _check_text_fields(m: Message) -> None:
    for key in ("reason", "message"):
        if key in m.fields:
            _text(m[key], f"{m.type} {key}", 500)
    if not 0 <= m.get("retry_after_s", 0) <= 3600:
        raise ProtocolError(f"{m.type} retry_after_s out of range")


def _check_pake(m: Message) -> None:
    if len(m.parts[0]) != CURVE_KEY_BYTES or len(m.parts[1]) != PAKE_MESSAGE_BYTES:
        raise ProtocolError("PAKE parts have the wrong size")


def _check_pake_reply(m: Message) -> None:
    if len(m.parts[0]) != PAKE_MESSAGE_BYTES:
        raise ProtocolError("PAKE_REPLY part has the wrong size")


def _check_mac(m: Message) -> None:
    if len(m.parts[0]) != MAC_BYTES:
        raise ProtocolError(f"{m.type} MAC has the wrong size")
    if m.type == "ADMIT" and not 1 <= m["data_port"] <= 65535:
        raise ProtocolError("ADMIT data_port out of range")


_CHECKS = {
    "HELLO": _check_hello,
    "WELCOME": _check_welcome,
    "READY": _check_ready,
    "BATCH": _check_batch,
    "RESULT": _check_result,
    "REJECT": _check_text_fields,
    "BYE": _check_text_fields,
    "ERROR": _check_text_fields,
    "PAKE": _check_pake,
    "PAKE_REPLY": _check_pake_reply,
    "CONFIRM": _check_mac,
    "ADMIT": _check_mac,
}


# -- size limits for the sockets: the largest legal part and the most parts of a message ----------
# Raw parts' size limits per message type (the header is at most MAX_HEADER_BYTES).
_PART_LIMITS = {
    "WELCOME": MAX_ROSTER_ROWS * ENCODING_BYTES,
    "BATCH": max(MAX_JPEG_BYTES, MAX_EXTRADATA_BYTES),
    "RESULT": max(MAX_FRAMES_PER_BATCH * MAX_FACES_PER_FRAME * ENCODING_BYTES, MAX_CROP_BYTES),
}


def _receives(msg_type: str, side: str) -> bool:
    direction = SPECS[msg_type].direction
    return "(admission)" not in direction and (direction == "both" or direction.endswith(f"-> {side}"))


def largest_part(receiver: str) -> int:
    """The largest legal part of any message `receiver` ("requester" or "volunteer") accepts on
    the data socket: its ZMQ_MAXMSGSIZE (libzmq applies that limit to each part)."""
    return max(MAX_HEADER_BYTES, *(_PART_LIMITS.get(t, 0) for t in SPECS if _receives(t, receiver)))


def most_parts(receiver: str) -> int:
    """The most parts (header included) of any message `receiver` accepts: checked before any
    part is copied out of ZeroMQ."""
    return 1 + max(SPECS[t].parts[1] for t in SPECS if _receives(t, receiver))


# -- admission messages over a raw stream ---------------------------------------------------------
def pack_admission(frames: list[bytes]) -> bytes:
    """One admission message as it travels: a 2-byte length, then each part as a 2-byte length
    and its bytes. At most MAX_ADMISSION_BYTES in all."""
    body = b"".join(len(f).to_bytes(2, "big") + bytes(f) for f in frames)
    packed = (len(body)).to_bytes(2, "big") + body
    if len(packed) > MAX_ADMISSION_BYTES:
        raise ProtocolError("admission message too large")
    return packed


class AdmissionReader:
    """Reassembles admission messages from a byte stream; holds at most MAX_ADMISSION_BYTES.
    feed() raises ProtocolError on anything that cannot be a legal admission message: the
    caller closes that connection."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[list[bytes]]:
        if len(self.buffer) + len(data) > 2 * MAX_ADMISSION_BYTES:
            raise ProtocolError("admission stream over its limit")
        self.buffer += data
        messages = []
        while len(self.buffer) >= 2:
            size = int.from_bytes(self.buffer[:2], "big")
            if size + 2 > MAX_ADMISSION_BYTES:
                raise ProtocolError("admission message too large")
            if len(self.buffer) < 2 + size:
                break
            body, self.buffer = self.buffer[2 : 2 + size], self.buffer[2 + size :]
            frames = []
            while body:
                if len(body) < 2 or len(frames) >= 4:
                    raise ProtocolError("admission message badly framed")
                length = int.from_bytes(body[:2], "big")
                if len(body) < 2 + length:
                    raise ProtocolError("admission message badly framed")
                frames.append(body[2 : 2 + length])
                body = body[2 + length :]
            messages.append(frames)
        return messages
