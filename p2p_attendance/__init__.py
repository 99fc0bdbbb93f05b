"""P2P Attendance: class attendance from a lecture video, shared across the classroom's computers."""
import os

__version__ = "0.1.0"
# Of the messages between copies (swarm/protocol.py), also advertised over mDNS. 2: BATCH may carry
# coded keyframes; 3: admission by PAKE on its own port, no code in HELLO, opaque frame tokens;
# 4: the same messages, but what a batch's answer must be changed (backward fill, weak detections
# confirmed by the batch): the requester reruns batches to check answers, so a volunteer of 3 would
# be caught as a liar, not told to update. 5: a seat carries its name across the batch, copied
# descriptors that miss the tolerance are encoded afresh; 6: a track's name is decided on its
# distinct descriptors (copies count once): honest answers differ again. 7: a face of a decided
# track carries its name up to TRACK_SLACK past the tolerance (compute/matching.py). 8: the backward
# fill searches in colour wherever a frame's own colour crops did not look (compute/tracking.py),
# and a track named on one copied descriptor gets a fresh one before it names (compute/batch.py).
# 9: BATCH carries `seats`, boxes where faces were seen so far, searched between whole-frame
# searches (compute/tracking.py): an old volunteer would reject the field; and every named
# descriptor copied within TRACK_SLACK of the tolerance gets a fresh one (compute/batch.py).
PROTOCOL_VERSION = 9
APP_NAME = "p2p-attendance"

# FFmpeg inside OpenCV prints its own lines ("moov atom not found") next to our one clear message
# about an unreadable video; silence it before anything imports cv2.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
# onnxruntime's telemetry writes a device id and a small database under ~/.cache and a file in
# the temp folder on import: a volunteer must leave nothing on a student's disk.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
