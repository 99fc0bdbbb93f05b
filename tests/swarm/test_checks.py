"""The check policy (swarm/checks.py) as pure functions: agreement, data validity, settling a
disagreement, judging a sighting, and the ledger of verified windows."""
import random

import numpy as np

from p2p_attendance.attendance.model import Face
from p2p_attendance.swarm.checks import (
    MAX_CLAIMS_KEPT,
    MAX_FRAMES_HELD,
    Answerer,
    BatchAnswer,
    FrameCopy,
    Sighting,
    SightingLedger,
    Verdict,
    answer_problem,
    answers_agree,
    claim_problem,
    judge_sighting,
    settle,
    should_check,
)

RNG = np.random.default_rng(1)


def descriptor(seed):
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v) * 1.4  # the norm of a real face descriptor


def answer(*frames):
    """frames: lists of (Face, encoding)."""
    return BatchAnswer([[f for f, _ in fr] for fr in frames], [np.array([e for _, e in fr], np.float32).reshape(-1, 128) for fr in frames])


ANN, STRANGER = descriptor(1), descriptor(2)
A = answer([(Face((0, 0, 9, 9), "ann", 0.30), ANN), (Face((20, 0, 29, 9), None, 0.8), STRANGER)])


def test_answers_agree_face_by_face_encodings_included():
    same = answer([(Face((20, 0, 29, 9), None, 0.81), STRANGER + 1e-6), (Face((0, 0, 9, 9), "ann", 0.30), ANN)])
    assert answers_agree(A, same)  # order and float noise do not matter
    friend = answer([(Face((0, 0, 9, 9), "ann", 0.30), ANN), (Face((20, 0, 29, 9), "bob", 0.5), STRANGER)])
    assert not answers_agree(A, friend)  # a friend added
    assert not answers_agree(A, answer([(Face((0, 0, 9, 9), "ann", 0.30), ANN)]))  # a face hidden
    forged = answer([(Face((0, 0, 9, 9), "ann", 0.10), ANN), (Face((20, 0, 29, 9), None, 0.8), STRANGER)])
    assert not answers_agree(A, forged)  # distance forged
    swapped = answer([(Face((0, 0, 9, 9), "ann", 0.30), ANN), (Face((20, 0, 29, 9), None, 0.8), descriptor(3))])
    assert not answers_agree(A, swapped)  # an unknown face's encoding replaced: clustering would change
    nan = STRANGER.copy()
    nan[0] = np.nan
    assert not answers_agree(A, answer([(Face((0, 0, 9, 9), "ann", 0.30), ANN), (Face((20, 0, 29, 9), None, 0.8), nan)]))


def test_answers_that_cannot_be_true_as_data_are_refused():
    assert answer_problem(A, (640, 480)) is None
    nan = ANN.copy()
    nan[7] = np.nan
    assert "not finite" in answer_problem(answer([(Face((0, 0, 9, 9), "ann", 0.3), nan)]), (640, 480))
    assert "norm" in answer_problem(answer([(Face((0, 0, 9, 9), "ann", 0.3), ANN * 1e6)]), (640, 480))
    assert "norm" in answer_problem(answer([(Face((0, 0, 9, 9), None, 0.9), np.zeros(128, np.float32))]), (640, 480))
    assert "outside" in answer_problem(answer([(Face((600, 0, 700, 90), "ann", 0.3), ANN)]), (640, 480))
    assert "outside" in answer_problem(answer([(Face((50, 50, 40, 60), "ann", 0.3), ANN)]), (640, 480))  # inverted box


def test_the_teachers_computer_settles_a_disagreement_and_nothing_else_does():
    liar, honest, local = ("addr", "10.0.0.9"), ("addr", "10.0.0.7"), ("local", "this computer")
    lie = answer([(Face((0, 0, 9, 9), "ann", 0.30), ANN), (Face((20, 0, 29, 9), "bob", 0.4), STRANGER)])
    assert settle([(Answerer(liar, False), lie), (Answerer(local, True), A)]) == ([liar], True)
    assert settle([(Answerer(honest, False), A), (Answerer(local, True), A)]) == ([], True)
    # Two untrusted peers, even agreeing, settle nothing: two friends can agree on a lie.
    assert settle([(Answerer(liar, False), lie), (Answerer(honest, False), A)]) == ([], False)
    assert settle([(Answerer(liar, False), lie), (Answerer(honest, False), A), (Answerer(local, True), A)]) == ([liar], True)


def test_a_sighting_is_verified_a_lie_or_unsure():
    rows = np.array([ANN])
    assert judge_sighting(ANN + 0.001, ANN, rows, 0.6) == Verdict.VERIFIED
    assert judge_sighting(STRANGER, STRANGER, rows, 0.6) == Verdict.LIE  # another face at the claimed box
    halfway = ANN + (STRANGER - ANN) * (0.7 / np.linalg.norm(STRANGER - ANN))  # 0.7 from ann
    assert judge_sighting(halfway, halfway, rows, 0.6) == Verdict.UNSURE  # near the line: proves nothing
    assert judge_sighting(halfway, ANN, rows, 0.6) == Verdict.LIE  # but the encoding sent was forged
    assert judge_sighting(np.full(128, np.nan, np.float32), ANN, rows, 0.6) == Verdict.UNSURE


def test_names_must_follow_from_the_encodings_sent():
    roster, ids = np.array([ANN, descriptor(5)]), ["ann", "bob"]
    d_ann = float(np.linalg.norm(STRANGER - ANN))
    d_stranger = float(min(np.linalg.norm(roster - STRANGER, axis=1)))
    honest = answer([(Face((0, 0, 9, 9), "ann", 0.0), ANN), (Face((20, 0, 29, 9), None, d_stranger), STRANGER)])
    assert claim_problem(honest, roster, ids, 0.6) is None
    relabelled = answer([(Face((0, 0, 9, 9), "ann", 0.0), ANN), (Face((20, 0, 29, 9), "bob", 0.35), STRANGER)])
    assert "named bob" in claim_problem(relabelled, roster, ids, 0.6)  # a friend added by renaming a stranger
    hidden = answer([(Face((0, 0, 9, 9), None, 0.0), ANN)])
    assert "named nobody" in claim_problem(hidden, roster, ids, 0.6)  # a present student renamed nobody
    forged_distance = answer([(Face((0, 0, 9, 9), "ann", 0.0), ANN + 0.01)])
    assert "distance" in claim_problem(forged_distance, roster, ids, 0.6)
    assert d_ann > 0.6


def test_should_check_is_secret_deterministic_and_about_the_share():
    picked = sum(should_check("job-1", i, 0.05) for i in range(4000))
    assert 120 < picked < 280
    assert [should_check("job-1", i, 0.05) for i in range(50)] == [should_check("job-1", i, 0.05) for i in range(50)]
    assert [should_check("job-1", i, 0.5) for i in range(50)] != [should_check("job-2", i, 0.5) for i in range(50)]
    assert not any(should_check("job-1", i, 0.0) for i in range(100))


def sighting(student, window, index, machine="m1"):
    return Sighting(student, window, index, (0, 0, 9, 9), machine.encode(), ("name", machine))


def frame(index):
    return FrameCopy(index, {}, b"jpeg%d" % index)


def test_ledger_picks_one_claim_per_window_and_forgets_frames_once_verified():
    ledger = SightingLedger(window_s=10.0, windows=3, rng=random.Random(4))
    assert ledger.window_of(25.0) == 2 and ledger.window_of(99.0) == 2
    for index in range(5):
        ledger.claim(sighting("ann", 0, index), frame(index))
    ledger.claim(sighting("bob", 0, 3), frame(3))
    picks = ledger.picks()
    assert sorted(p.student_id for p in picks) == ["ann", "bob"] and ledger.picks() == []  # one at a time per pair
    ann = next(p for p in picks if p.student_id == "ann")
    ledger.judged(ann, Verdict.VERIFIED)
    assert ("ann", 0) in ledger.verified and ledger.sightings_verified == 1
    assert ledger.frames_held == 1  # only the frame bob's pending claim needs
    ledger.claim(sighting("ann", 0, 9), frame(9))  # the window counts already: not kept
    assert ledger.frame(9) is None


def test_ledger_drops_a_liars_claims_and_tries_another():
    ledger = SightingLedger(window_s=10.0, windows=2, rng=random.Random(1))
    ledger.claim(sighting("ann", 1, 10, "liar"), frame(10))
    ledger.claim(sighting("ann", 1, 11, "honest"), frame(11))
    pick = ledger.picks()[0]
    ledger.judged(pick, Verdict.LIE if pick.machine == ("name", "liar") else Verdict.UNSURE)
    ledger.drop_machine(("name", "liar"))
    rest = ledger.picks()
    assert all(p.machine == ("name", "honest") for p in rest)
    for p in rest:
        ledger.judged(p, Verdict.UNSURE)
    assert ledger.waiting == 0 and not ledger.verified  # unsure proves nothing either way


def test_ledger_memory_is_bounded_per_window():
    ledger = SightingLedger(window_s=60.0, windows=1, rng=random.Random(2))
    for index in range(500):
        ledger.claim(sighting("ann", 0, index), frame(index))
    assert ledger.waiting == MAX_CLAIMS_KEPT and ledger.frames_held == MAX_CLAIMS_KEPT
    kept = {c.frame_index for c in ledger._claims[("ann", 0)]}
    assert max(kept) > MAX_CLAIMS_KEPT  # a random sample, not the first few a liar could fill
    crowded = SightingLedger(window_s=1.0, windows=1000)
    for w in range(MAX_FRAMES_HELD):  # a checker far behind: one pair, one frame each
        crowded.claim(sighting("ann", w, w), frame(w))
    assert crowded.frames_held == MAX_FRAMES_HELD
    crowded.claim(sighting("ann", 0, 5000), frame(5000))  # a second claim needing a new frame: refused
    assert crowded.frame(5000) is None and crowded.frames_held == MAX_FRAMES_HELD
    crowded.claim(sighting("bob", 0, 3), frame(3))  # on a frame already held: kept
    crowded.claim(sighting("cy", 999, 6000), frame(6000))  # a pair's first claim: always kept
    assert crowded.frame(6000) is not None and crowded.waiting == MAX_FRAMES_HELD + 2


def test_the_teachers_own_sightings_count_without_a_check():
    ledger = SightingLedger(window_s=10.0, windows=2)
    ledger.vouch(sighting("ann", 1, 3))
    assert ("ann", 1) in ledger.verified and ledger.sightings_verified == 0 and ledger.picks() == []


def test_names_decided_per_track_are_not_taken_for_a_lie():
    # An honest volunteer names a face after its track (compute/matching.match_batch): in one frame
    # its nearest student is bob (0.55) but over the batch it is ann, within tolerance there too.
    roster, ids = np.zeros((2, 128), np.float32), ["ann", "bob"]
    roster[1, 0] = 0.7
    clearly, nearer_bob = np.zeros(128, np.float32), np.zeros(128, np.float32)
    clearly[:2], nearer_bob[:2] = (0.15, 0.30), (0.374, 0.443)
    d_clear, d_odd = float(np.linalg.norm(clearly)), float(np.linalg.norm(nearer_bob))
    frames = [[(Face((0, 0, 9, 9), "ann", d), e)] for d, e in ((d_clear, clearly), (d_odd, nearer_bob), (d_clear, clearly))]
    assert claim_problem(answer(*frames), roster, ids, 0.6) is None
    per_frame = [[(Face((0, 0, 9, 9), "bob", 0.55), nearer_bob)] if k == 1 else fr for k, fr in enumerate(frames)]
    assert "named bob" in claim_problem(answer(*per_frame), roster, ids, 0.6)


def test_a_face_a_float_hair_past_the_tolerance_is_not_taken_for_a_lie():
    # Another machine's float arithmetic may put a face 1e-5 on the other side of a threshold than
    # the volunteer's did: its name stands; a face clearly past the threshold is still a lie.
    roster, ids = np.zeros((2, 128), np.float32), ["ann", "bob"]
    roster[1, 0] = 5.0  # bob is far from every face below
    at_tolerance = np.zeros(128, np.float32)
    at_tolerance[0] = -(0.6 + 5e-5)
    named = answer([(Face((0, 0, 9, 9), "ann", 0.6 + 5e-5), at_tolerance)])
    assert claim_problem(named, roster, ids, 0.6) is None
    at_tolerance[0] = -(0.6 + 1e-3)
    assert "named ann" in claim_problem(answer([(Face((0, 0, 9, 9), "ann", 0.601), at_tolerance)]), roster, ids, 0.6)


def test_a_face_a_float_hair_under_the_margin_is_not_taken_for_a_lie():
    ids = ["ann", "bob"]
    near_bob = np.zeros((2, 128), np.float32)
    near_bob[1, :2] = (0.3, 0.35 - 5e-5)  # bob only a hair under MIN_MARGIN (0.05) farther than ann
    face = np.zeros(128, np.float32)
    face[0] = 0.3
    assert claim_problem(answer([(Face((0, 0, 9, 9), "ann", 0.3), face)]), near_bob, ids, 0.6) is None
    near_bob[1, 1] = 0.34
    assert "named ann" in claim_problem(answer([(Face((0, 0, 9, 9), "ann", 0.3), face)]), near_bob, ids, 0.6)
