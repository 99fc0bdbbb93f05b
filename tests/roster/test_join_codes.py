"""Issue 16, item 2: one join code per class, lecture after lecture, and a limit on guesses that
holds across lectures (roster/join_codes.py, the AttemptLimiter's saved state)."""
import os
import stat

from conftest import LECTURE_CLASS, Lecture, tiny_video, wrong_code

from p2p_attendance.roster.join_codes import (
    class_join_code,
    load_attempt_budget,
    rotate_join_code,
    save_attempt_budget,
)
from p2p_attendance.roster.store import ClassRoster, class_dir
from p2p_attendance.swarm.security import AttemptLimiter

CLASS = LECTURE_CLASS


def test_a_class_keeps_its_code_in_a_private_file_until_rotated():
    code = class_join_code(CLASS)
    assert code.isdigit() and len(code) == 6
    assert class_join_code(CLASS) == code  # the next lecture: the same code
    path = class_dir(CLASS) / "join.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert save_attempt_budget(CLASS, code, {"tokens": 3.0, "at": 1.0})
    new = rotate_join_code(CLASS)
    assert new != code and class_join_code(CLASS) == new
    assert load_attempt_budget(CLASS, new) is None  # rotating resets the budget
    assert not save_attempt_budget(CLASS, code, {"tokens": 0.0, "at": 2.0})  # a job of the old code ends later
    assert load_attempt_budget(CLASS, new) is None


def test_a_damaged_code_file_gives_a_new_code_not_a_crash():
    class_join_code(CLASS)
    (class_dir(CLASS) / "join.json").write_text('{"code": "12<b>", "budget": 5}')
    assert class_join_code(CLASS).isdigit()


def test_a_saved_budget_refills_with_wall_time_but_not_when_the_clock_went_back():
    spent = AttemptLimiter(burst=20, refill_s=30.0, now=0.0)
    while spent.start(0.0) == 0:
        spent.finish(0.0, failed=True)
    state = spent.state(0.0, wall=1000.0)
    later = AttemptLimiter(burst=20, refill_s=30.0, now=50.0)
    later.restore(state, now=50.0, wall=1000.0 + 300.0)  # the next lecture, 5 minutes on
    assert later.start(50.0) == 0 and 9.5 < later.tokens < 10.5
    back = AttemptLimiter(burst=20, refill_s=30.0, now=0.0)
    back.restore(state, now=0.0, wall=10.0)  # the clock was set back: nothing refilled
    assert back.start(0.0) > 0
    broken = AttemptLimiter(now=0.0)
    broken.restore({"tokens": float("nan"), "at": "x"}, now=0.0, wall=0.0)
    assert broken.tokens == 20


def test_a_budget_spent_in_one_lecture_still_limits_guesses_in_the_next(tmp_path):
    video = tiny_video(tmp_path / "lecture.mp4")
    with Lecture(video) as first:
        code = first.job.join_code
        answers = [first.guess(wrong_code(code)) for _ in range(21)]
    assert answers[:20] == ["wrong"] * 20 and answers[20][0] == "wait"
    with Lecture(video) as second:
        assert second.job.join_code == code  # the students' code did not change
        again = second.guess(wrong_code(code))
        right = second.guess(code)
    print(f"first lecture: {answers.count('wrong')} wrong guesses answered, then {answers[20]}; next lecture: {again}, the right code: {right}")
    assert again[0] == "wait" and again[1] > 0  # not a fresh burst of 20
    new_code = rotate_join_code(CLASS)
    with Lecture(video) as third:
        assert third.job.join_code == new_code
        assert third.guess(wrong_code(new_code)) == "wrong"  # a new code starts with a full budget
        assert third.guess(new_code) == "admitted"


def test_a_code_given_for_one_job_leaves_the_class_code_alone(tmp_path):
    video = tiny_video(tmp_path / "lecture.mp4")
    code = class_join_code(CLASS)
    with Lecture(video, join_code="777777") as job:
        assert job.job.join_code == "777777"
        assert job.guess("777777") == "admitted"
    assert class_join_code(CLASS) == code


def test_the_cli_lists_the_class_code_and_rotates_it():
    import subprocess
    import sys

    from p2p_attendance.roster.store import save_class

    save_class(ClassRoster(CLASS, []))
    code = class_join_code(CLASS)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "p2p_attendance", "classes", *args], check=False, capture_output=True, text=True, timeout=60)

    assert f"join code: {code}" in cli().stdout
    rotated = cli("--rotate-code", "physics 1")  # the class name as typed; found by its folder
    assert rotated.returncode == 0, rotated.stderr
    new = class_join_code(CLASS)
    assert new != code and new in rotated.stdout
    missing = cli("--rotate-code", "Physiks 1")
    assert missing.returncode == 2 and "Did you mean 'Physics 1'" in missing.stderr
