"""The swarm simulation (tools/simulate.py): its stand-in worker's answers pass the requester's
checks, and a short run with two real volunteer processes counts every frame once."""
import math

import numpy as np
import pytest

from p2p_attendance.swarm.checks import BatchAnswer, answer_problem, claim_problem
from p2p_attendance.swarm.wire import job_params
from p2p_attendance.tools import simulate
from p2p_attendance.tools.simulate_volunteer import FACES_PER_FRAME, StandInProcessor


def test_the_stand_in_answer_passes_the_requesters_checks_and_repeats_for_the_same_frame():
    ids, matrix = simulate.make_roster().matrix()
    processor = StandInProcessor(sleep_s=0.0)
    processor.start_job(job_params({"tolerance": 0.6, "upsample": 0, "min_score": 0.0}, ids, matrix.tobytes()))
    out = processor.process([{"token": 1}, {"token": 2}], [b"frame one", b"frame two"])
    faces = out.faces
    rows = np.frombuffer(out.encodings, np.float32).reshape(-1, 128)
    answer = BatchAnswer(faces, [rows[:FACES_PER_FRAME], rows[FACES_PER_FRAME:]])
    assert [len(f) for f in faces] == [FACES_PER_FRAME, FACES_PER_FRAME]
    assert answer_problem(answer, (1280, 720)) is None
    assert claim_problem(answer, matrix, ids, 0.6) is None
    again = processor.process([{"token": 9}], [b"frame one"])  # a check copy has fresh tokens, same bytes
    assert again.encodings == out.encodings[: len(again.encodings)] and again.faces[0] == out.faces[0]


@pytest.mark.slow
def test_a_short_simulation_with_two_volunteers_counts_every_frame_once(tmp_path):
    video = simulate.make_video(tmp_path, "h264", seconds=12)
    run = simulate.run_once(video, "h264", volunteers=2, sleep_ms=100, timeout_s=120)
    assert run.total == 12 and run.frames == run.total  # every sampled frame has exactly one result
    assert run.quarantined == 0  # the stand-in's answers passed every check
    # The clock starts when both have joined; the first may already be working on one batch (a
    # batch per worker before any result), a third of these 12 frames: the ideal then counts work
    # done before the clock started (CI read 1.28 once), so the most a correct run can read is 12/8.
    assert math.isfinite(run.efficiency) and 0.0 < run.efficiency <= run.total / (run.total - simulate.BATCH_SIZE) + 0.05
    assert run.ideal_s > 0 and run.wall_s > 0 and run.bytes_per_frame > 1000  # frames went over the wire
    assert run.copies_won + run.copies_lost <= run.reissued


def test_behind_a_link_the_bound_is_what_the_link_can_carry_when_that_is_slower_than_the_ideal():
    def run(link_mbit):  # 16 volunteers, 100 ms a frame, 1,600 frames of 100 KiB: ideal 10 s at 160 frames/s
        return simulate.SimRun(16, "h264", 1600, wall_s=16.0, ideal_s=10.0, efficiency=10.0 / 16.0, cpu_pct=5.0, bytes_per_frame=100 * 1024,
                               reissued=0, copies_won=0, copies_lost=0, volunteer_loop_ms_s=5.0, link_mbit=link_mbit,
                               bytes_after_join=1600 * 100 * 1024)

    limited = run(100.0)
    assert limited.link_fps == pytest.approx(100e6 / 8 / (100 * 1024))  # ~122 frames/s
    assert limited.bound_s == pytest.approx(1600 * 100 * 1024 / (100e6 / 8))  # ~13.1 s: the link, not the workers, is the limit
    assert "link-limited ideal s" in simulate.table([limited])
    assert run(None).link_fps is None and run(None).bound_s == 10.0
    assert run(1000.0).bound_s == 10.0  # a link faster than the workers changes nothing


def test_behind_a_link_the_bound_is_what_its_measured_goodput_carries():
    # tc tbf counts every byte of an Ethernet frame: a full TCP segment carries 1448 of its 1514
    # bytes, so the job's bytes can never cross a 100 Mbit/s link faster than ~95.6 Mbit/s.
    goodput = 0.956 * 100e6 / 8
    run = simulate.SimRun(16, "h264", 1600, wall_s=16.0, ideal_s=10.0, efficiency=10.0 / 16.0, cpu_pct=5.0, bytes_per_frame=100 * 1024,
                          reissued=0, copies_won=0, copies_lost=0, volunteer_loop_ms_s=5.0, link_mbit=100.0,
                          bytes_after_join=1600 * 100 * 1024, link_goodput=goodput)
    assert run.bound_s == pytest.approx(1600 * 100 * 1024 / goodput)
    assert "95.6" in simulate.table([run])  # the goodput the efficiency is measured against is shown


@pytest.mark.slow
def test_the_links_measured_goodput_is_its_rate_less_the_headers():
    import subprocess
    import sys

    link = simulate.make_link(100.0)
    if isinstance(link, str):
        pytest.skip(link)
    try:
        measured = subprocess.run(["ip", "netns", "exec", link[0], sys.executable, "-c",
                                   f"from p2p_attendance.tools.simulate import measure_goodput; print(measure_goodput({link[1]!r}))"],
                                  capture_output=True, text=True, timeout=120)
    finally:
        simulate.drop_link(link)
    goodput = float(measured.stdout.strip().splitlines()[-1])
    assert 0.8 * 100e6 / 8 < goodput < 100e6 / 8, measured.stdout
