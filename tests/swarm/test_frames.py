"""swarm/frames.py: the one batch iterator behind the frame producer and the requester's redo."""
import numpy as np
from conftest import tiny_video

from p2p_attendance.compute.batch import JobParams
from p2p_attendance.compute.engine import DetectionSettings
from p2p_attendance.compute.video import probe_video
from p2p_attendance.swarm.frames import FrameProducer
from p2p_attendance.swarm.requester import JobSpec, Requester


def test_production_and_redo_give_identical_batches_for_the_same_frames(tmp_path):
    params = JobParams([], np.zeros((0, 128), np.float32), 0.6, DetectionSettings())
    info = probe_video(tiny_video(tmp_path / "tiny.mp4"))
    indexes = [1, 2, 4, 5, 6, 9]  # gaps: the sampler skips frames in both paths alike
    spec = JobSpec(info, 5.0, params, join_code="424242", batch_size=4)
    produced_spec = JobSpec(info, 5.0, params, batch_size=4, skip=frozenset(range(spec.info.sample_count(5.0))) - set(indexes))

    producer = FrameProducer(produced_spec, depth=8)
    producer.start()
    produced = []
    while (batch := producer.out.get(timeout=60)) is not None:
        produced.append((batch.frames, batch.payloads))
    producer.join(10)

    requester = Requester(spec, listen="tcp://127.0.0.1:0")
    try:
        requester._reread(indexes)  # what a quarantined peer's frames go through to be done again
        redone = []
        while not requester._redo_queue.empty():
            redone.append(requester._redo_queue.get_nowait())
    finally:
        requester.close()

    assert [[e["index"] for e in frames] for frames, _ in produced] == [[1, 2, 4, 5], [6, 9]]
    assert redone == produced  # same entries (index, time), same JPEG bytes, same batch boundaries
    assert not requester.warnings


def test_a_redo_reader_stops_when_the_job_closes_with_its_queue_full(tmp_path):
    """The redo queue is bounded; once the job has ended nobody empties it, and a reader blocked
    on it would keep its thread (and its video reader threads) for the life of the app."""
    import threading

    params = JobParams([], np.zeros((0, 128), np.float32), 0.6, DetectionSettings())
    spec = JobSpec(probe_video(tiny_video(tmp_path / "tiny.mp4")), 5.0, params, join_code="424242", batch_size=1)
    requester = Requester(spec, listen="tcp://127.0.0.1:0")
    while not requester._redo_queue.full():
        requester._redo_queue.put_nowait(None)
    reader = threading.Thread(target=requester._reread, args=([1, 2, 3],), daemon=True)
    reader.start()
    reader.join(1.0)
    assert reader.is_alive()  # waiting for room, as it should while the job runs
    requester.close()
    reader.join(5.0)
    assert not reader.is_alive()
