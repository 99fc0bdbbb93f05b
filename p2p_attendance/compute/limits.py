"""Compute's own limits: what a frame may cost to decode and search, and which coded keyframes
a decoder may take as they are. The wire protocol, a layer above, applies them to messages.
"""
from __future__ import annotations

# Keyframes of these codecs may travel as they are and be decoded by the volunteer: their decoding
# is bit-exact by specification, so every peer sees the same pixels (result checks compare peers).
PASSTHROUGH_CODECS = ("h264", "hevc")
MAX_FRAME_WIDTH = 1920  # frames travel at most this wide: 4K lecture recordings are scaled down
MAX_FACES_PER_FRAME = 64  # a packed lecture hall may show more: the surest are kept
# Decoded size of one frame. A volunteer's decoders refuse more pixels than this before allocating
# them (a 1 MB JPEG can decode to 9000x9000 px: 243 MB, gigabytes once upsampled), and its face
# search refuses frames whose upsampled pyramid would exceed MAX_UPSAMPLED_PIXELS: frames travel at
# most MAX_FRAME_WIDTH wide, so a square of that side at the CLI's largest upsample is the most an
# honest job needs.
MAX_FRAME_SIDE = 4096
MAX_FRAME_PIXELS = MAX_FRAME_SIDE * MAX_FRAME_SIDE
MAX_UPSAMPLE = 2  # each step doubles both sides: 4x the pixels
MAX_UPSAMPLED_PIXELS = MAX_FRAME_WIDTH * MAX_FRAME_WIDTH * 4**MAX_UPSAMPLE
# Decoded frames a batch's face finder keeps for its backward fill (compute/tracking.py): one honest
# batch of eight 1080p frames, 50 MB (a worker peaks at 0.8 GB on one such frame, workers.py). A
# batch of more or larger frames is filled back only over its last frames that fit.
BACKFILL_HELD_BYTES = 8 * 1920 * 1080 * 3
# Surroundings of faces whose descriptor the finder copied from the frame before (those that match
# nobody on it, and each named descriptor's latest copy), held until the batch is matched
# (compute/batch.py): one 1080p frame's worth.
COPIED_HELD_BYTES = 1920 * 1080 * 3
# Seats (boxes where faces were seen so far in the job) a batch comes with, searched in colour
# crops between whole-frame searches (compute/tracking.py): a 36-seat hall with strangers and
# students who shifted seat has ~30-40. A seat is face-shaped (the detector's boxes are square
# but for rounding), so its crop is a face's surroundings; only a seat too small for the unscaled
# whole-frame sweep is searched (~2-5 ms a crop): 96 seats cost a batch of 8 frames at most ~3 s.
MAX_SEATS = 96
MIN_SEAT_PX = 8


def seat_is_valid(box) -> bool:
    """Whether box may be a seat: four plain ints within a frame's largest side, at least
    MIN_SEAT_PX and about as high as wide (a tall strip would make a crop the frame's height)."""
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(type(v) is int and 0 <= v <= MAX_FRAME_SIDE for v in box)):
        return False
    width, height = box[2] - box[0], box[3] - box[1]
    return min(width, height) >= MIN_SEAT_PX and abs(width - height) <= max(2, width // 4)
