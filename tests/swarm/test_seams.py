"""swarm/seams.py: names across the seams between batches, whatever order the batches come in."""
import itertools

import numpy as np
from conftest import plane_at

from p2p_attendance.swarm.seams import BatchNames, Seams, TakenBack

_at = plane_at


ROSTER = np.stack([_at(0.0, 0.0), _at(0.7, 0.0)])  # students a and b, 0.7 apart
IDS = ["a", "b"]
SEAT = (100, 100, 180, 180)
CLEAR_A, OVER_A = _at(0.15, 0.30), _at(0.0, 0.605)  # a at 0.34; a at 0.605 (alone: over the tolerance)
CLEAR_B, OVER_B = _at(0.55, 0.30), _at(0.70, 0.605)  # the same for b


def _batch(first: int, points, source="own") -> BatchNames:
    """A batch of one seat (the seams work out what its own answer decided)."""
    return BatchNames(tuple(range(first, first + len(points))), tuple([SEAT] for _ in points), tuple(p.reshape(1, 128) for p in points), source)


def _all_names(seams: Seams, batches) -> dict:
    named = {}
    for batch in batches:
        for settled in seams.add(batch):
            named.update({key: (n.student, round(n.distance, 4), n.sources) for key, n in settled.names.items()})
    for settled in seams.finish():
        named.update({key: (n.student, round(n.distance, 4), n.sources) for key, n in settled.names.items()})
    return named


def test_names_across_seams_are_the_same_whatever_order_the_batches_come_in():
    # Three batches of one seat: a clearly in the first, a just over the tolerance in the second
    # (unnamed on its own), a clearly again in the third.
    batches = [_batch(0, [CLEAR_A] * 3, "v1"), _batch(3, [OVER_A] * 3, "v2"), _batch(6, [CLEAR_A] * 3, "v3")]
    results = []
    for order in itertools.permutations(batches):
        seams = Seams(ROSTER, IDS, 0.6, total=9)
        results.append(_all_names(seams, order))
        assert seams.held == 0  # nothing kept once the job is over
    assert all(r == results[0] for r in results)
    assert sorted(results[0]) == [(3, 0), (4, 0), (5, 0)]
    assert {student for student, _, _ in results[0].values()} == {"a"}
    assert results[0][(3, 0)][2] == frozenset({"v1", "v2", "v3"})  # both seams gave it: every batch behind it


def test_a_batch_is_named_only_when_both_its_seams_are_in():
    seams = Seams(ROSTER, IDS, 0.6, total=9)
    assert seams.add(_batch(0, [CLEAR_A] * 3)) == []  # its next neighbour is not in yet
    settled = seams.add(_batch(3, [OVER_A] * 3))
    assert [one.batch.indexes[0] for one in settled] == [0]  # the first: both its sides are settled
    assert seams.held == 1  # the middle one waits for its other seam, which could disagree
    [middle] = seams.add(_batch(6, [CLEAR_A] * 3))[:1]
    assert middle.batch.indexes[0] == 3 and sorted(middle.names) == [(3, 0), (4, 0), (5, 0)]


def test_two_seams_that_disagree_name_nobody():
    # a's seat before, b's seat after, the same too-close face in between: a seat swap or a
    # look-alike, and either way not a name to give.
    ambiguous = _at(0.35, 0.52)  # a at 0.63, b at 0.63: on its own nobody
    batches = [_batch(0, [CLEAR_A] * 2), _batch(2, [ambiguous] * 2), _batch(4, [CLEAR_B] * 2)]
    for order in itertools.permutations(batches):
        assert _all_names(Seams(ROSTER, IDS, 0.6, total=6), order) == {}


def test_resumed_frames_without_their_batch_and_the_videos_ends_are_no_seams():
    # Frames 0-2 came back from a checkpoint that kept no batch for them (an older version's): the
    # batch after them has no seam there, and is settled as soon as its other seam is.
    seams = Seams(ROSTER, IDS, 0.6, total=6, absent=range(3))
    assert [one.batch.indexes[0] for one in seams.add(_batch(3, [OVER_A] * 3))] == [3]
    assert seams.held == 0


def test_a_batch_done_again_beside_a_saved_one_has_that_seam_and_the_saved_names_stay_final():
    # Frames 0-2 and 6-8 came back from the checkpoint with their batches; 3-5 are done again.
    saved = [_batch(0, [CLEAR_A] * 3, "then"), _batch(6, [OVER_A] * 3, "then")]
    seams = Seams(ROSTER, IDS, 0.6, total=9, absent=[*range(3), *range(6, 9)], saved=saved)
    [settled] = seams.add(_batch(3, [OVER_A] * 3, "now"))  # both its seams at once: nothing to wait for
    assert settled.batch.indexes == (3, 4, 5) and seams.held == 0
    assert {key: (n.student, n.sources) for key, n in settled.names.items()} == {(i, 0): ("a", frozenset({"then", "now"})) for i in (3, 4, 5)}
    assert seams.finish() == []  # the saved batches settled in the interrupted run: nothing of theirs comes back


def test_a_voided_batch_takes_back_what_its_seam_proposed_and_its_redo_is_looked_at_again():
    # A liar's batch (it forged a's descriptor at the seat) is voided once the lie is caught. The
    # names its seam proposed for the neighbour still held go with it; the honest redo is looked at anew.
    liar = _batch(0, [CLEAR_A] * 3, "liar")
    neighbour = _batch(3, [OVER_A] * 3, "own")
    seams = Seams(ROSTER, IDS, 0.6, total=9)  # frames 6-8 never come (given up)
    seams.add(liar)
    seams.add(neighbour)
    seams.forget(range(3))
    assert _all_names(seams, []) == {}  # not "a" on the liar's word
    seams = Seams(ROSTER, IDS, 0.6, total=9)
    seams.add(liar)
    seams.add(neighbour)
    seams.forget(range(3))
    named = _all_names(seams, [_batch(0, [CLEAR_A] * 3, "honest")])
    assert sorted(named) == [(3, 0), (4, 0), (5, 0)] and all(sources == frozenset({"honest", "own"}) for _, _, sources in named.values())


def test_a_name_its_own_batch_gave_is_taken_back_whatever_order_the_batches_come_in():
    # a sits clearly at SEAT beside a stranger (a at 0.58) in the first batch; in the second a has
    # left and the stranger, alone, is named a on his own evidence.
    stranger, beside = _at(0.0, 0.58), (400, 100, 480, 180)
    first = BatchNames((0, 1), ([SEAT, beside],) * 2, (np.stack([CLEAR_A, stranger]),) * 2, "v1")
    second = BatchNames((2, 3), ([beside],) * 2, (stranger.reshape(1, 128),) * 2, "v2")
    for order in itertools.permutations([first, second]):
        seams = Seams(ROSTER, IDS, 0.6, total=4)
        settled = [one for batch in order for one in seams.add(batch)] + seams.finish()
        taken_back = {key: back for one in settled for key, back in one.taken_back.items()}
        assert taken_back == {(2, 0): TakenBack("a", (frozenset({"v1", "v2"}),)), (3, 0): TakenBack("a", (frozenset({"v1", "v2"}),))}
        assert all(not one.names for one in settled)


def test_a_saved_batch_with_a_voided_frame_is_doubted_whole_and_its_seam_names_go():
    # A lie found in the saved batch's middle frame (a resumed sighting): frame 1 is done again, and
    # the name its seam proposed to the batch after it goes, though that seam's frame stays saved.
    seams = Seams(ROSTER, IDS, 0.6, total=9, absent=range(3), saved=[_batch(0, [CLEAR_A] * 3, "then")])
    assert seams.add(_batch(3, [OVER_A] * 3, "now")) == []  # its seam with frames 6-8 is still to come
    seams.forget([1])
    assert [one.batch.indexes for one in seams.add(_batch(1, [CLEAR_A], "redo"))] == [(1,)]  # no seam with a doubted batch
    middle, _last = seams.add(_batch(6, [OVER_A] * 3, "now"))  # its other seam: not waited for, frame 2 is not done again
    assert middle.batch.indexes == (3, 4, 5) and middle.names == {}
