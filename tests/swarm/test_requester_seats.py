"""swarm/requester.py, seats: where faces were seen so far in the job travel with each batch
(compute/tracking.py searches them), fixed when the batch is first handed out, so every computer
that does it (a volunteer, a check copy's, this computer's checker) searches the same."""
import pytest
from conftest import person, tiny_video

from p2p_attendance.attendance.model import Face
from p2p_attendance.compute.batch import JobParams
from p2p_attendance.compute.engine import DetectionSettings
from p2p_attendance.compute.limits import MAX_SEATS
from p2p_attendance.compute.video import probe_video
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.checks import BatchAnswer
from p2p_attendance.swarm.peers import PeerRecord
from p2p_attendance.swarm.requester import Answerer, CheckRecord, JobSpec, Requester
from p2p_attendance.swarm.scheduler import Batch

ANN = person(30)
VOLUNTEER = b"volunteer"
SEAT, OTHER = (10, 10, 40, 40), (100, 10, 130, 40)


@pytest.fixture
def requester(tmp_path):
    params = JobParams(["ann"], ANN[None, :].copy(), 0.6, DetectionSettings())
    spec = JobSpec(probe_video(tiny_video(tmp_path / "tiny.mp4")), 5.0, params, join_code="424242")
    requester = Requester(spec, listen="tcp://127.0.0.1:0")
    requester.peers[VOLUNTEER] = PeerRecord("laptop", "10.0.0.7", 1)
    requester.scheduler.set_workers(VOLUNTEER, 1)
    try:
        yield requester
    finally:
        requester.close()


def answered(requester, index, box, score=1.0):
    """The volunteer's answer for frame index: one unknown face at box."""
    batch = Batch(index, [{"index": index, "time_s": index / 5}], [b"jpeg"])
    requester._store(VOLUNTEER, batch, BatchAnswer([[Face(box, None, 0.9, score)]], [person(40 + index)[None, :]]), [b""])


def test_only_a_sure_face_makes_a_seat(requester):
    # A seat vouches for a weak detection at it (compute/tracking.py); a weak face kept for its seat
    # must not keep the seat alive after the student left (a coat pattern scoring ~0.1 there).
    answered(requester, 0, SEAT)
    answered(requester, 1, OTHER, score=0.1)
    assert requester._seats == [SEAT]
    answered(requester, 2, OTHER, score=requester.spec.params.settings.min_score)
    assert requester._seats == [SEAT, OTHER]


def test_a_batch_goes_out_with_the_seats_known_then_and_its_check_copy_with_the_same(requester, monkeypatch):
    sent = []
    monkeypatch.setattr(requester, "_send", lambda identity, msg_type, parts=None, **fields: sent.append((msg_type, fields)))
    answered(requester, 0, SEAT)
    batch = Batch(7, [{"index": 3, "time_s": 0.6}], [b"jpeg"])
    requester.scheduler.add(batch)
    requester.peers[VOLUNTEER].credit = 1
    requester._dispatch()
    [(msg_type, fields)] = sent
    assert msg_type == "BATCH" and fields["seats"] == [list(SEAT)]
    assert proto.batch_seats(proto.decode(proto.encode("BATCH", [b"jpeg"], **fields))) == (SEAT,)  # as the volunteer reads it
    answered(requester, 1, OTHER)  # seen since: the next batch gets it, not this one's check copy
    copies = []
    monkeypatch.setattr(requester, "_target_check", copies.append)
    requester._schedule_check(batch, CheckRecord(batch.id, [(Answerer(("laptop", "10.0.0.7"), False), VOLUNTEER, None)]))
    assert [copy.seats for copy in copies] == [(SEAT,)]
    assert requester._seats_of(Batch(8, [{"index": 4, "time_s": 0.8}], [b"jpeg"])) == (SEAT, OTHER)


def test_the_seats_a_requester_keeps_are_bounded_the_longest_unseen_forgotten(requester):
    for index in range(MAX_SEATS + 5):
        answered(requester, index % 5, (index * 50 % 4000, index * 50 // 4000 * 50, index * 50 % 4000 + 30, index * 50 // 4000 * 50 + 30))
    seats = requester._seats_of(Batch(99, [{"index": 9, "time_s": 1.8}], [b"jpeg"]))
    assert len(seats) == MAX_SEATS and seats[-1][0] == (MAX_SEATS + 4) * 50 % 4000


def test_a_machine_caught_lying_takes_its_seats_with_it(requester):
    answered(requester, 0, SEAT)
    requester.peers[b"other"] = PeerRecord("other laptop", "10.0.0.8", 1)
    batch = Batch(1, [{"index": 1, "time_s": 0.2}], [b"jpeg"])
    requester._store(b"other", batch, BatchAnswer([[Face(OTHER, None, 0.9, 1.0)]], [person(50)[None, :]]), [b""])
    assert requester._seats == [SEAT, OTHER]
    requester._quarantine_machine(requester.peers[VOLUNTEER].machine, "test: caught")
    assert requester._seats == [OTHER]


def test_the_crops_held_for_batches_whose_seams_are_open_are_bounded(requester, monkeypatch):
    from p2p_attendance.swarm import requester as requester_module

    monkeypatch.setattr(requester_module, "MAX_HELD_CROP_BYTES", 100_000)
    for first in (0, 2, 4):  # every batch's next neighbour still out: all held
        batch = Batch(first, [{"index": first, "time_s": first / 5}], [b"jpeg"])
        requester._store(VOLUNTEER, batch, BatchAnswer([[Face(SEAT, None, 0.9)]], [person(40)[None, :]]), [b"c" * 60_000])
    assert len(requester._held) == 3 and sum(held.crop_bytes for held in requester._held.values()) == 60_000


def test_this_computers_checker_does_a_batch_with_the_seats_it_first_went_out_with(requester):
    submitted = []

    class Checker:  # the checker process's pool, as _pump_local uses it
        def poll(self):
            return []

        def idle_slot(self):
            return "slot"

        def submit(self, slot, token, entries, payloads, codec=None, seats=()):
            submitted.append(seats)

        def close(self):
            pass

    answered(requester, 0, SEAT)
    batch = Batch(7, [{"index": 3, "time_s": 0.6}], [b"jpeg"])
    assert requester._seats_of(batch) == (SEAT,)  # handed out to a volunteer, which failed it
    answered(requester, 1, OTHER)
    requester._verifier = Checker()
    requester._local_batches.append(("rescue", batch))
    requester._pump_local()
    assert submitted == [(SEAT,)]
