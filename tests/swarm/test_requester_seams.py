"""swarm/requester.py with swarm/seams.py: names across a batch seam count like any sighting, the
teacher's computer's own only when every batch behind them is, and a liar's seam names are taken back."""
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest
from conftest import person, tiny_video

from p2p_attendance.attendance.model import Face
from p2p_attendance.checkpoint import Checkpoint, JobIdentity
from p2p_attendance.compute.batch import JobParams
from p2p_attendance.compute.engine import DetectionSettings
from p2p_attendance.compute.video import probe_video
from p2p_attendance.swarm.checks import BatchAnswer, FrameCopy, Sighting
from p2p_attendance.swarm.peers import PeerRecord
from p2p_attendance.swarm.requester import CHECKPOINT, LOCAL, JobSpec, Requester
from p2p_attendance.swarm.scheduler import Batch
from p2p_attendance.swarm.workers import Verified

ANN = person(30)
AWAY = person(31) - ANN
AWAY /= np.linalg.norm(AWAY)
CLEAR, OVER = ANN + 0.3 * AWAY, ANN + 0.605 * AWAY  # ann at 0.3; ann at 0.605, over the tolerance on its own
VOLUNTEER = b"volunteer"
BOX = (0, 0, 60, 60)


@pytest.fixture
def requester(tmp_path):
    params = JobParams(["ann"], ANN[None, :].copy(), 0.6, DetectionSettings())
    info = replace(probe_video(tiny_video(tmp_path / "tiny.mp4")), frame_count=600)  # taken for a minute: 12 presence windows
    spec = JobSpec(info, 5.0, params, join_code="424242")
    requester = Requester(spec, listen="tcp://127.0.0.1:0")
    requester.peers[VOLUNTEER] = PeerRecord("laptop", "10.0.0.7", 1)
    try:
        yield requester
    finally:
        requester.close()


def time_of(index: int) -> float:
    return [0.0, 0.2, 10.0, 10.2, 20.0, 20.2][index]  # frames 0-1 in the first 5 s presence window, 2-3 in the third, 4-5 the fifth


def store(requester, identity, first, descriptor, name):
    """A batch of frames first, first + 1 with one face at BOX, as its own answer named it."""
    frames = [{"index": i, "time_s": time_of(i)} for i in (first, first + 1)]
    distance = float(np.linalg.norm(descriptor - ANN))
    answer = BatchAnswer([[Face(BOX, name, distance)]] * 2, [descriptor[None, :].astype(np.float32)] * 2)
    requester._store(identity, Batch(first, frames, [b"jpeg"] * 2), answer, [b"", b""])


def job_over(requester):
    requester._seams_safely(requester.seams.finish)


@pytest.mark.parametrize("order", [(0, 2), (2, 0)])
def test_the_teachers_own_batches_name_a_face_across_their_seam_whatever_came_first(requester, order):
    batches = {0: CLEAR, 2: OVER}
    for first in order:
        store(requester, LOCAL, first, batches[first], "ann" if first == 0 else None)
    job_over(requester)
    for index in (2, 3):
        [face] = requester.results[index].faces
        assert face.student_id == "ann" and abs(face.distance - 0.605) < 1e-3
        assert requester.results[index].encodings == (None,)  # named: out of the unknown faces
        assert ("ann", requester.ledger.window_of(time_of(index))) in requester.ledger.verified  # this computer's own
    assert requester.seams.held == 0 and not requester._held


def test_a_seam_name_on_a_volunteers_word_is_a_claim_to_check_not_a_verified_sighting(requester):
    store(requester, LOCAL, 0, CLEAR, "ann")
    store(requester, VOLUNTEER, 2, OVER, None)  # the volunteer's descriptor at the seat, unnamed on its own
    job_over(requester)
    assert requester.results[2].faces[0].student_id == "ann"
    window = requester.ledger.window_of(time_of(2))
    assert window != requester.ledger.window_of(time_of(1)) and ("ann", window) not in requester.ledger.verified
    picked = [s for s in requester.ledger.picks() if s.frame_index in (2, 3)]
    assert picked and all(s.machine == requester.peers[VOLUNTEER].machine for s in picked)  # checked, and a lie would be its


def test_a_liars_seam_names_are_taken_back_when_it_is_caught(requester):
    store(requester, VOLUNTEER, 0, CLEAR, "ann")  # a forged descriptor of ann at the seat
    store(requester, LOCAL, 2, OVER, None)
    job_over(requester)
    assert requester.results[2].faces[0].student_id == "ann"
    window = requester.ledger.window_of(time_of(2))
    assert ("ann", window) not in requester.ledger.verified  # this computer's own face, but named on the volunteer's word
    [claim] = [s for s in requester.ledger.picks() if s.window == window]
    assert claim.machine == requester.peers[VOLUNTEER].machine
    requester._quarantine_machine(requester.peers[VOLUNTEER].machine, "test: caught")
    token = ("verify", 0)  # the check of it comes back after the take-back: the face there is within reach of ann
    requester._local_busy = (token, [claim])
    requester._on_local(Verified(token, OVER.astype(np.float32).tobytes(), 0.01))
    assert ("ann", window) not in requester.ledger.verified and not requester.ledger.picks()
    for index in (2, 3):
        [face] = requester.results[index].faces
        assert face.student_id is None  # this computer's own face, unknown again
        np.testing.assert_array_equal(requester.results[index].encodings[0], OVER.astype(np.float32))  # back among the unknown faces


def test_a_liars_seam_names_on_an_honest_volunteers_faces_are_withdrawn_not_left_to_count(requester):
    # The names sit on an honest volunteer's faces, so its claims are filed in its name: dropping
    # the liar's claims leaves them. Taking the names back must withdraw them too.
    honest = b"honest"
    requester.peers[honest] = PeerRecord("other laptop", "10.0.0.8", 1)
    store(requester, VOLUNTEER, 0, CLEAR, "ann")  # the liar: a forged descriptor of ann at the seat
    store(requester, honest, 2, OVER, None)
    job_over(requester)
    assert requester.results[2].faces[0].student_id == "ann"
    assert requester.ledger.waiting == 4  # the liar's two claims, and the two seam names on the honest faces
    requester._quarantine_machine(requester.peers[VOLUNTEER].machine, "test: caught")
    assert requester.results[2].faces[0].student_id is None
    assert requester.ledger.waiting == 0 and not requester.ledger.picks()


def test_a_seam_step_that_fails_leaves_the_batches_own_names_and_the_job_going(requester, monkeypatch, caplog):
    def broken(_batch):
        raise ValueError("a bug in the seams")

    monkeypatch.setattr(requester.seams, "add", broken)
    store(requester, LOCAL, 0, CLEAR, "ann")  # before: the exception left _store, and the job's loop with it
    store(requester, LOCAL, 2, OVER, None)
    assert [requester.results[i].faces[0].student_id for i in (0, 1, 2, 3)] == ["ann", "ann", None, None]
    assert ("ann", requester.ledger.window_of(time_of(0))) in requester.ledger.verified
    assert "names across batch seams failed" in caplog.text


def test_the_seams_wait_at_the_end_for_a_failed_batch_only_while_a_checker_can_do_it(requester):
    """The job's end (Requester.run) settles the seams once no failed batch is left for this
    computer to do; a checker that could not start never does it, and the job must still end."""
    import threading

    frames = [{"index": i, "time_s": time_of(i)} for i in (2, 3)]
    requester._local_batches.append(("rescue", Batch(2, frames, [b"jpeg"] * 2)))
    assert requester._verifier is None and requester._verifier_starter is None  # its start failed
    assert not requester._local_batch_pending() and requester._local_idle()  # before: waited for it for ever
    starting = threading.Event()
    requester._verifier_starter = threading.Thread(target=starting.wait, args=(5,))  # still starting: it will do the batch
    requester._verifier_starter.start()
    try:
        assert requester._local_batch_pending()
    finally:
        starting.set()


BESIDE = (200, 0, 260, 60)
STRANGER = ANN + 0.58 * AWAY  # ann at 0.58: named ann wherever ann is not seen beside him


def store_seats(requester, identity, first, seats):
    """A batch of frames first, first + 1 with the same faces: seats [(box, descriptor, name)]."""
    frames = [{"index": i, "time_s": time_of(i)} for i in (first, first + 1)]
    faces = [Face(box, name, float(np.linalg.norm(d - ANN))) for box, d, name in seats]
    encodings = np.stack([d for _, d, _ in seats]).astype(np.float32)
    requester._store(identity, Batch(first, frames, [b"jpeg"] * 2), BatchAnswer([faces] * 2, [encodings] * 2), [b"crop"] * (2 * len(seats)))


@pytest.mark.parametrize("later", [LOCAL, VOLUNTEER])
def test_a_name_the_seam_takes_back_is_an_unknown_face_and_never_counted(requester, later):
    # Seed 8: ann sat beside a stranger (unnamed then); in the next batch ann had left and the
    # stranger was named ann on his own evidence. The same computer did both batches.
    store_seats(requester, later, 0, [(BOX, CLEAR, "ann"), (BESIDE, STRANGER, None)])
    store_seats(requester, later, 2, [(BESIDE, STRANGER, "ann")])
    assert requester.results[2].faces[0].student_id == "ann"  # shown at once, counted once its seams settle
    job_over(requester)
    window = requester.ledger.window_of(time_of(2))
    for index in (2, 3):
        [face] = requester.results[index].faces
        assert face.student_id is None
        np.testing.assert_array_equal(requester.results[index].encodings[0], STRANGER.astype(np.float32))  # among the unknown faces
    assert ("ann", window) not in requester.ledger.verified and not [s for s in requester.ledger.picks() if s.window == window]
    assert [e.face[0] for e in requester.evidence.snapshot().students["ann"]] in ([0], [1])  # his crop is no evidence of ann
    if later == LOCAL:  # ann's own frames count as before: this computer's own, or claims to check
        assert ("ann", requester.ledger.window_of(time_of(0))) in requester.ledger.verified
    else:
        assert {s.frame_index for s in requester.ledger.picks()} <= {0, 1} and requester.ledger.waiting == 2


def saving(requester):
    saved = {}
    requester.result_sink = lambda results, batch: saved.update({r.index: r for r in results})
    return saved


def test_the_checkpoint_keeps_a_batch_only_once_its_seams_have_settled(requester):
    # Seed 8's phantom again. Saved as it arrived, a crash before the next batch came would have
    # resumed with the name the seam takes back (a resumed sighting is verified, and passes: the
    # stranger is within the tolerance of ann on his own).
    saved = saving(requester)
    store_seats(requester, LOCAL, 0, [(BOX, CLEAR, "ann"), (BESIDE, STRANGER, None)])
    store_seats(requester, LOCAL, 2, [(BESIDE, STRANGER, "ann")])
    assert sorted(saved) == [0, 1]  # batch 2 waits for its seam with the batch after it
    job_over(requester)
    assert [saved[i].faces[0].student_id for i in (2, 3)] == [None, None]
    assert [saved[i].faces[0].student_id for i in (0, 1)] == ["ann", "ann"]


@contextmanager
def resumed_after_a_crash(requester, tmp_path, interrupted):
    """The checkpoint as `interrupted(requester)` left it when the app died, and a requester
    resuming the job from it (as job.py wires one): (that requester, the checkpoint)."""
    identity = JobIdentity("video", "roster", "{}")
    checkpoint = Checkpoint(tmp_path / "job.sqlite", identity, resume=False)
    requester.result_sink = checkpoint.add
    interrupted(requester)
    checkpoint.close()
    resumed = Checkpoint(tmp_path / "job.sqlite", identity, resume=True)
    prior = resumed.load()
    again = Requester(replace(requester.spec, skip=frozenset(prior)), listen="tcp://127.0.0.1:0", result_sink=resumed.add,
                      prior_results=prior, prior_batches=resumed.batches_beside_gaps())
    try:
        yield again, resumed
    finally:
        again.close()
        resumed.close()


@pytest.mark.parametrize(("saved_by", "left"), [(LOCAL, None), (VOLUNTEER, "ann")])
def test_a_batch_done_again_after_a_crash_has_its_seam_with_the_saved_batch_beside_it(requester, tmp_path, saved_by, left):
    # The crash came once batch 0 was saved and before batch 2's seams settled. The resumed run
    # does batch 2 again; its seam with the saved batch 0 takes the phantom back as the interrupted
    # run would have (before: no seam with a resumed frame, and the phantom stood). A volunteer's
    # saved word, unchecked, takes back no name of this computer's batch, then or now.
    def interrupted(requester):
        store_seats(requester, saved_by, 0, [(BOX, CLEAR, "ann"), (BESIDE, STRANGER, None)])
        store_seats(requester, LOCAL, 2, [(BESIDE, STRANGER, "ann")])

    with resumed_after_a_crash(requester, tmp_path, interrupted) as (again, checkpoint):
        assert sorted(again.results) == [0, 1] and again.results[0].encodings == (None, again.results[0].encodings[1])  # named: not among the unknown
        store_seats(again, LOCAL, 2, [(BESIDE, STRANGER, "ann")])
        job_over(again)
        assert [again.results[i].faces[0].student_id for i in (2, 3)] == [left, left]
        assert (("ann", again.ledger.window_of(time_of(2))) in again.ledger.verified) == (left == "ann")
        assert [again.results[i].faces[0].student_id for i in (0, 1)] == ["ann", "ann"]  # the saved batch's names are final
        assert [f.student_id for f in checkpoint.load()[2].faces] == [left]


def test_a_lie_found_in_a_saved_volunteers_batch_takes_back_the_names_its_seam_gave(requester, tmp_path):
    # A volunteer's batch 0 (ann at the seat) was saved before the crash, its word unchecked. On
    # resume this computer does batch 2 again, unnamed on its own (ann at 0.605), and its seam with
    # the saved batch names ann there, as a claim in that batch's name. When the resumed sighting
    # of frame 0 proves a lie, the name that batch's word gave goes too.
    def interrupted(requester):
        store(requester, VOLUNTEER, 0, CLEAR, "ann")
        store(requester, VOLUNTEER, 2, OVER, None)

    with resumed_after_a_crash(requester, tmp_path, interrupted) as (again, _):
        store(again, LOCAL, 2, OVER, None)
        job_over(again)
        window = again.ledger.window_of(time_of(2))
        assert again.results[2].faces[0].student_id == "ann" and ("ann", window) not in again.ledger.verified
        lie = Sighting("ann", again.ledger.window_of(time_of(0)), 0, BOX, LOCAL, CHECKPOINT)
        again.ledger.claim(lie, FrameCopy.of(0, {"index": 0}, b"jpeg"))
        token = ("verify", 0)
        again._local_busy = (token, [lie])
        again._on_local(Verified(token, (ANN + AWAY).astype(np.float32).tobytes(), 0.01))  # no ann at frame 0's seat
        assert 0 not in again.results  # voided: done again
        assert [again.results[i].faces[0].student_id for i in (2, 3)] == [None, None]
        assert not [s for s in again.ledger.picks() if s.window == window] and ("ann", window) not in again.ledger.verified


def test_a_stopped_job_counts_its_held_batches_but_saves_none_settled_without_a_seam(requester):
    # Stopped before batch 0 came: batch 2's phantom stands for this run's (partial) report, but
    # saved, a resumed run would keep it beside the batch 0 it does then.
    saved = saving(requester)
    store_seats(requester, LOCAL, 2, [(BESIDE, STRANGER, "ann")])
    requester._seams_safely(requester.seams.finish, save=False)  # what run() does when stopped early
    assert requester.results[2].faces[0].student_id == "ann" and not requester._held
    assert saved == {}


def test_a_checkpoint_that_cannot_be_written_is_said_once_and_costs_the_run_nothing(requester):
    events = []
    requester.on_event = lambda kind, payload: events.append((kind, payload))

    def disk_full(results, batch):
        raise OSError(28, "No space left on device")

    requester.result_sink = disk_full
    store_seats(requester, LOCAL, 0, [(BOX, CLEAR, "ann")])
    store_seats(requester, LOCAL, 2, [(BOX, OVER, None)])  # named across the seam, this computer's own
    job_over(requester)
    assert [requester.results[i].faces[0].student_id for i in (0, 1, 2, 3)] == ["ann"] * 4
    assert ("ann", requester.ledger.window_of(time_of(2))) in requester.ledger.verified
    assert len([w for w in requester.warnings if "checkpoint could not be written" in w]) == 1
    assert len([p for kind, p in events if kind == "warning"]) == 1


def test_a_volunteers_batch_takes_back_no_name_another_computer_gave(requester):
    # The same evidence, but the batch beside the stranger's came from a volunteer: a volunteer's
    # batch could be forged to unname anyone on another computer's batch, so the name stands there.
    store_seats(requester, VOLUNTEER, 0, [(BOX, CLEAR, "ann"), (BESIDE, STRANGER, None)])
    store_seats(requester, LOCAL, 2, [(BESIDE, STRANGER, "ann")])
    job_over(requester)
    assert [requester.results[i].faces[0].student_id for i in (2, 3)] == ["ann", "ann"]
    assert ("ann", requester.ledger.window_of(time_of(2))) in requester.ledger.verified


def test_a_volunteers_seam_beside_does_not_spoil_the_teachers_own_seam_taking_a_name_back(requester):
    # Both seams of the stranger's batch take his name back; one of them rests on a volunteer's
    # batch. The teacher's own seam is enough (before: the two seams' sources merged, and the
    # volunteer among them kept the phantom).
    store_seats(requester, LOCAL, 0, [(BOX, CLEAR, "ann"), (BESIDE, STRANGER, None)])
    store_seats(requester, LOCAL, 2, [(BESIDE, STRANGER, "ann")])
    store_seats(requester, VOLUNTEER, 4, [(BOX, CLEAR, "ann"), (BESIDE, STRANGER, None)])
    job_over(requester)
    assert [requester.results[i].faces[0].student_id for i in (2, 3)] == [None, None]
    assert ("ann", requester.ledger.window_of(time_of(2))) not in requester.ledger.verified


def test_a_batch_whose_settling_fails_counts_on_its_own_names_and_the_job_goes_on(requester, monkeypatch, caplog):
    count = requester._count_sighting
    calls = []

    def fails_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise ValueError("a bug in counting")
        count(*args)

    monkeypatch.setattr(requester, "_count_sighting", fails_once)
    store(requester, LOCAL, 0, CLEAR, "ann")
    job_over(requester)  # before: the exception left the seams step, and the job's loop with it
    assert ("ann", requester.ledger.window_of(time_of(0))) in requester.ledger.verified  # counted on its own names again
    assert not requester._held and "settling frames 0-1 failed" in caplog.text
