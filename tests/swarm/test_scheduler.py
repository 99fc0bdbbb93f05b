"""The requester's batch bookkeeping: pull, tail re-issue, first result wins (swarm/scheduler.py)."""
from p2p_attendance.swarm.scheduler import Batch, Scheduler


def test_scheduler_hands_out_work_reissues_the_tail_and_counts_each_batch_once():
    s = Scheduler()
    for i in range(3):
        s.add(Batch(i, [{"index": i, "time_s": i}], [b"j"]))
    assert s.assign("slow").id == 0 and s.assign("fast").id == 1 and s.assign("fast").id == 2
    assert s.complete("fast", 1) is not None and s.complete("fast", 1) is None  # duplicate dropped
    assert s.complete("intruder", 2) is None  # never given to it
    assert s.assign("fast") is None  # more may come: no tail copies yet
    s.exhausted = True
    copy = s.assign("fast")
    assert copy.id == 0 and copy.holders == {"slow", "fast"}  # the slow peer's batch, re-issued
    assert s.complete("fast", 0) is not None and s.complete("slow", 0) is None  # first wins
    assert s.complete("fast", 2) is not None and s.done


def test_scheduler_returns_a_vanished_peers_batches_first_and_gives_up_after_repeated_failures():
    s = Scheduler()
    for i in range(3):
        s.add(Batch(i, [{"index": i, "time_s": i}], [b"j"]))
    s.assign("a"), s.assign("b")
    assert s.release("a") == 1 and s.pending[0].id == 0
    s.exhausted = True
    assert s.assign("c").id == 0
    s.fail("c", 0)
    assert s.assign("c").id == 2  # never the batch it failed
    for peer in ("d", "e"):
        assert s.assign(peer).id == 0
        s.fail(peer, 0)
    assert [b.id for b in s.failed] == [0]  # failed on three different peers
    assert s.outstanding("b") == 1


def test_a_batch_held_too_long_or_whose_holders_keep_vanishing_is_handled():
    now = [0.0]
    s = Scheduler(clock=lambda: now[0])
    s.add(Batch(0, [{"index": 0, "time_s": 0}], [b"j"]))
    s.assign("staller")
    now[0] = 100.0
    assert s.overdue(now[0], 60) == [("staller", 0)]
    s.fail("staller", 0)
    assert s.assign("staller") is None and s.assign("other").id == 0
    for peer in ("other", "b", "c"):
        if peer != "other":
            assert s.assign(peer).id == 0
        s.release(peer)  # each peer that takes it vanishes: a poison batch
    assert [b.id for b in s.failed] == [0] and not s.pending
