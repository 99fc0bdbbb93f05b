"""The --screenshot tour as a teacher's machine runs it: a whole job, a PNG of every screen, exit 0."""
import os
import stat
import subprocess
import sys

import cv2


def test_screenshot_tour_runs_a_job_and_saves_every_screen(demo_material, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    shots = tmp_path / "shots"
    out = subprocess.run(
        [sys.executable, "-m", "p2p_attendance", "gui", "--screenshot", str(shots), "--video", str(demo_material.video),
         "--roster", str(demo_material.photos_dir)],
        capture_output=True, text=True, timeout=300, env=env,
        preexec_fn=lambda: os.umask(0o022),  # the common default: without care, 0644 PNGs in a 0755 folder
    )
    assert out.returncode == 0, out.stderr[-2000:]
    names = sorted(p.name for p in shots.glob("*.png"))
    assert {"take-attendance.png", "review.png", "classes.png", "share.png"} <= set(names)
    for name in names:
        image = cv2.imread(str(shots / name))
        assert image is not None and image.shape[1] >= 800 and image.std() > 10  # a real screen, not a blank
        assert stat.S_IMODE(os.stat(shots / name).st_mode) == 0o600, name  # students' names and faces
    assert stat.S_IMODE(os.stat(shots).st_mode) == 0o700
    assert not list(shots.glob(".*.tmp"))
