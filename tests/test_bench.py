"""The benchmark: its pure helpers, and one short smoke run (~40 s on 2 cores)."""
import math
from types import SimpleNamespace

import pytest

from p2p_attendance import bench


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
