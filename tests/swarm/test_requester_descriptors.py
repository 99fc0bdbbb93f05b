"""swarm/requester.py, results side: the few descriptors per student the unknown-face grouping
compares (attendance/evidence.py) come only from what the teacher's computer computed or verified."""
import numpy as np
import pytest
from conftest import near, person, tiny_video

from p2p_attendance.attendance.model import Face
from p2p_attendance.compute.batch import JobParams
from p2p_attendance.compute.engine import DetectionSettings
from p2p_attendance.compute.video import probe_video
from p2p_attendance.swarm.checks import BatchAnswer
from p2p_attendance.swarm.peers import PeerRecord
from p2p_attendance.swarm.requester import JobSpec, Requester
from p2p_attendance.swarm.scheduler import Batch
from p2p_attendance.swarm.workers import Verified

ANN = person(30)
VOLUNTEER = b"volunteer"


@pytest.fixture
def requester(tmp_path):
    params = JobParams(["ann"], ANN[None, :].copy(), 0.6, DetectionSettings())
    spec = JobSpec(probe_video(tiny_video(tmp_path / "tiny.mp4")), 5.0, params, join_code="424242")
    requester = Requester(spec, listen="tcp://127.0.0.1:0")
    try:
        yield requester
    finally:
        requester.close()


def claim_ann(requester, identity, sent, index=0):
    batch = Batch(index, [{"index": index, "time_s": index / 5}], [b"jpeg"])
    answer = BatchAnswer([[Face((0, 0, 60, 60), "ann", float(np.linalg.norm(sent - ANN)))]], [sent[None, :]])
    requester._store(identity, batch, answer, [b""])
    requester._seams_safely(requester.seams.finish)  # its neighbours never come: it counts on its own names


def verify(requester, sighting, fresh):
    """The checker's answer for one picked sighting: the descriptor it computed at the claimed box."""
    token = ("verify", 0)
    requester._local_busy = (token, [sighting])
    requester._on_local(Verified(token, np.asarray(fresh, np.float32).tobytes(), 0.01))


def test_a_volunteers_sighting_gives_no_descriptor_until_verified_and_then_this_computers_own(requester):
    requester.peers[VOLUNTEER] = PeerRecord("laptop", "10.0.0.7", 1)
    sent = near(ANN, 1)
    claim_ann(requester, VOLUNTEER, sent)
    assert "ann" not in requester.evidence.snapshot().descriptors  # the volunteer's word alone
    [sighting] = requester.ledger.picks()
    fresh = near(ANN, 2)
    verify(requester, sighting, fresh)
    kept = requester.evidence.snapshot().descriptors["ann"]
    np.testing.assert_array_equal(kept, fresh[None, :])  # the recomputed descriptor, not the one sent


def test_an_unsure_check_keeps_no_descriptor(requester):
    requester.peers[VOLUNTEER] = PeerRecord("laptop", "10.0.0.7", 1)
    toward = (person(31) - ANN) / np.linalg.norm(person(31) - ANN)
    claim_ann(requester, VOLUNTEER, ANN + 0.55 * toward)
    [sighting] = requester.ledger.picks()
    verify(requester, sighting, ANN + 0.68 * toward)  # past tolerance + slack, short of a proven lie
    assert requester.ledger.unsure == 1 and requester.lies_caught == 0
    assert "ann" not in requester.evidence.snapshot().descriptors


def test_a_caught_lie_keeps_no_descriptor(requester):
    requester.peers[VOLUNTEER] = PeerRecord("laptop", "10.0.0.7", 1)
    claim_ann(requester, VOLUNTEER, near(ANN, 5))
    [sighting] = requester.ledger.picks()
    verify(requester, sighting, person(32))  # another face at the claimed box
    assert requester.lies_caught == 1
    assert "ann" not in requester.evidence.snapshot().descriptors


def test_the_teachers_own_workers_sightings_give_descriptors_at_once(requester):
    requester.peers[b"own"] = PeerRecord("this computer", "127.0.0.1", 1, trusted=True)
    sent = near(ANN, 4)
    claim_ann(requester, b"own", sent)
    np.testing.assert_array_equal(requester.evidence.snapshot().descriptors["ann"], sent[None, :])
