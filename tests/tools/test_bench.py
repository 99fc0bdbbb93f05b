"""The benchmark: its pure helpers, and one short smoke run (~40 s on 2 cores)."""
import math
from types import SimpleNamespace

import pytest

from p2p_attendance.tools import bench


def test_format_table_is_markdown_with_padded_columns():
    table = bench.format_table(["Measure", "Value"], [["detect", "195.5 ms/frame"], ["short"]])
    lines = table.splitlines()
    assert lines[0].startswith("| Measure") and lines[1].startswith("|---")
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    assert lines[3].split("|")[2].strip() == ""  # a short row is padded with empty cells


def test_efficiency_is_rate_based_and_one_for_perfect_scaling():
    assert bench.efficiency(100.0, 100, 50.0, 100, 2) == pytest.approx(1.0)
    assert bench.efficiency(100.0, 100, 100.0, 100, 2) == pytest.approx(0.5)
    # A few frames more or fewer in the timed span are normalised away.
    assert bench.efficiency(100.0, 100, 24.0, 96, 4) == pytest.approx(1.0)
    assert math.isnan(bench.efficiency(0.0, 100, 10.0, 10, 2))


def test_worker_counts_double_up_to_the_cap():
    assert bench.worker_counts(2, None) == [1, 2]
    assert bench.worker_counts(8, None) == [1, 2, 4, 8]
    assert bench.worker_counts(6, None) == [1, 2, 4, 6]
    assert bench.worker_counts(16, 4) == [1, 2, 4]
    assert bench.worker_counts(1, None) == [1]


def _student(sid, status, frames):
    return SimpleNamespace(id=sid, status=status, frames_seen=frames)


def test_compare_attendance_and_ground_truth():
    a = [_student("x", "present", 10), _student("y", "absent", 0)]
    b = [_student("x", "present", 12), _student("y", "absent", 1)]
    assert bench.compare_attendance(a, b) == (True, 2, [])
    c = [_student("x", "absent", 2), _student("y", "absent", 0)]
    assert bench.compare_attendance(a, c) == (False, 8, ["x"])
    assert bench.truth_misses(a, {"x": "present", "y": "absent"}) == []
    assert bench.truth_misses(c, {"x": "present", "z": "absent"}) == ["x: absent (want present)", "z: missing (want absent)"]


def test_parser_options():
    args = bench.build_parser().parse_args(["--quick", "--max-workers", "3", "--faces", "F", "--markdown", "out.md"])
    assert args.quick and args.max_workers == 3 and str(args.faces) == "F" and str(args.markdown) == "out.md"
    args = bench.build_parser().parse_args(["--scaling", "--repeats", "2"])
    assert args.scaling and args.repeats == 2 and bench.bench_repeats(args) == 2


@pytest.mark.parametrize("argv", [["--scaling", "--accuracy"], ["--accuracy", "--simulate", "4"], ["--scaling", "--repeats", "0"]])
def test_parser_refuses_two_only_tables_and_no_runs(argv, capsys):
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(argv)
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_run_prints_and_writes_one_table(tmp_path, capsys):
    out = tmp_path / "bench.md"
    assert bench.main(["--quick", "--duration", "8", "--scale-duration", "8", "--markdown", str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    assert "| Measure" in text and "dlib" in text and "CPU:" in text
    for what in ("1. detect, 130 px", "1c. verified sightings, 35 students", "2. speed-up project / baseline, 55 px dim", "2. attendance unchanged, 130 px",
                 "3. W=2 volunteers", "4. requester CPU", "5. requester peak RSS", "5. worker ready"):
        assert what in text and what in printed, what
    assert "timed out" not in text


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_scaling_run_prints_only_the_scaling_rows(tmp_path, capsys):
    out = tmp_path / "scaling.md"
    assert bench.main(["--scaling", "--quick", "--scale-duration", "8", "--faces", str(tmp_path / "none"), "--markdown", str(out)]) == 0
    text = out.read_text()
    for what in ("3. W=1 volunteer (1 core each)", "3. W=2 volunteers", "4. requester CPU / volunteers' busy CPU, W=2"):
        assert what in text, what
    for other in ("1. detect", "2. speed-up", "5. requester peak RSS", "Accuracy"):
        assert other not in text, other
    assert "efficiency **nan**" not in text

# -- the accuracy section's scoring (pure) -----------------------------------------------------------
def _frame(index, time_s, *faces):
    from p2p_attendance.attendance.model import Face, FrameResult

    return FrameResult(index, time_s, tuple(Face(box, sid, 0.4) for box, sid in faces))


def test_face_owner_is_the_true_face_holding_the_box_centre():
    visible = {"ann": (100, 100, 140, 140), "bob": (130, 100, 170, 140)}
    assert bench.face_owner((102, 104, 138, 142), visible) == "ann"
    assert bench.face_owner((128, 100, 172, 140), visible) == "bob"  # both hold it: the nearer centre
    assert bench.face_owner((300, 300, 340, 340), visible) is None


def test_score_sightings_tells_right_phantom_and_wrong_face_apart():
    truth = {0.0: {"ann": (0, 0, 50, 50), "bob": (100, 0, 150, 50)}, 1.0: {"bob": (100, 0, 150, 50)}}
    results = [
        _frame(0, 0.0, ((2, 2, 48, 48), "ann"), ((102, 2, 148, 48), "ann"), ((300, 0, 340, 40), None)),  # ann twice: counted once
        _frame(1, 1.0, ((2, 2, 48, 48), "ann"), ((102, 2, 148, 48), "carl")),  # ann not there; carl on bob's face
    ]
    s = bench.score_sightings(results, truth.__getitem__, ["ann", "bob", "carl"])
    assert s.correct == {"ann": 1, "bob": 0, "carl": 0}
    assert s.phantom == 2  # ann at 1 s (not visible), carl at 1 s (never in the room)
    assert s.wrong_face == 0 and s.false_boxes == 2 and s.faces_on_people == 3 and s.faces_visible == 3
    swapped = [_frame(0, 0.0, ((102, 2, 148, 48), "ann"), ((2, 2, 48, 48), "bob"))]
    assert bench.score_sightings(swapped, truth.__getitem__, ["ann", "bob"]).wrong_face == 2


def test_the_unsure_cell_says_whose_faces_each_unsure_group_really_holds():
    from p2p_attendance.attendance.clustering import UnknownGroup

    truth = {float(t): {"redford": (0, 0, 40, 40), "guest": (200, 0, 240, 40)} for t in range(3)}
    results = {t: _frame(t, float(t), ((2, 2, 38, 38), None), ((202, 2, 238, 38), None)) for t in range(3)}
    groups = (UnknownGroup("Unknown 1", tuple((t, 1) for t in range(3)), (0.0, 1.0, 2.0)),
              UnknownGroup("Unsure 1", tuple((t, 0) for t in range(3)), (0.0, 1.0, 2.0), ("redford", "rick")))
    assert bench.unsure_text(groups, results, truth.__getitem__, labelled=True) == "1 (redford: looks like redford, rick)"
    assert bench.unsure_text(groups, results, truth.__getitem__, labelled=False) == "1"
    assert bench.unsure_text(groups[:1], results, truth.__getitem__, labelled=True) == "0"


def test_sightings_against_the_plain_loop_find_the_worst_student():
    project = bench.Sightings(correct={"ann": 9, "bob": 3, "cy": 0})
    plain = bench.Sightings(correct={"ann": 9, "bob": 6, "cy": 0})
    assert bench.sightings_against(project, plain) == ("bob", 0.5, ["bob"], 2)  # cy: the plain loop never saw her
    plain.correct["ann"] = 10
    assert bench.sightings_against(project, plain)[2] == ["bob", "ann"]  # each student under 95 %, worst first


def test_statuses_and_first_last_seen_against_the_truth():
    from types import SimpleNamespace as S

    expected = {"ann": {"status": "present", "first": 0.0, "last": 19.0}, "bob": {"status": "absent", "first": None, "last": None},
                "cy": {"status": "present", "first": 5.0, "last": 19.0}}
    got = [S(id="ann", status="present", first_seen_s=2.0, last_seen_s=19.0), S(id="bob", status="present", first_seen_s=3.0, last_seen_s=4.0)]
    assert bench.statuses_right(got, expected) == 1
    right, total, worst = bench.seen_times_error(got, expected)
    assert (right, total) == (2, 4) and math.isinf(worst)  # cy was never reported
    table = bench.accuracy_table([bench.Scenario("a", {"x": "1"}), bench.Scenario("b", {"x": "2", "y": "3"})])
    assert table.splitlines()[0].split("|")[1:4] == [" Measure ", " a ", " b "] and "| y " in table
