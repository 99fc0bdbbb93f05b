"""Discovery and the swarm together: nobody types an address (mDNS bound to 127.0.0.1)."""
import json
import signal
import subprocess
import sys
import time

APP = [sys.executable, "-m", "p2p_attendance"]
CODE = "777777"


def test_volunteers_found_by_mdns_finish_a_job_started_with_no_address(demo_material, tmp_path):
    volunteers = [
        subprocess.Popen([*APP, "volunteer", "--join-code", CODE, "--cores", "1", "--name", name, "--mdns-interface", "127.0.0.1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("vol-A", "vol-B")
    ]
    try:
        listed = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not {"vol-A", "vol-B"} <= {p["name"] for p in listed}:
            out = subprocess.run([*APP, "peers", "--json", "--timeout", "3", "--mdns-interface", "127.0.0.1"], capture_output=True, text=True, timeout=30)
            listed = json.loads(out.stdout or "[]")
        mine = {p["name"]: p for p in listed if p["name"] in ("vol-A", "vol-B")}
        assert set(mine) == {"vol-A", "vol-B"}
        assert all(p["state"] == "sharing" and p["cores"] == 1 for p in mine.values())

        run = subprocess.run(
            [*APP, "run", str(demo_material.video), "--roster", str(demo_material.photos_dir), "--workers", "0",
             "--join-code", CODE, "--mdns-interface", "127.0.0.1", "--sample-fps", "2", "--json", str(tmp_path / "r.json")],
            capture_output=True, text=True, timeout=240,
        )
        assert run.returncode == 0, run.stderr
        report = json.loads((tmp_path / "r.json").read_text())
        assert {s["id"]: s["status"] for s in report["students"]} == demo_material.expected
        assert report["job"]["frames_processed"] == report["job"]["frames_total"]
        assert {p["name"] for p in report["job"]["peers"]} == {"vol-A", "vol-B"}
    finally:
        for process in volunteers:
            process.send_signal(signal.SIGINT)  # Ctrl-C: leave cleanly, withdraw the advert
        for process in volunteers:
            try:
                assert process.wait(20) == 0
            except subprocess.TimeoutExpired:
                process.kill()
                raise
    # They joined by themselves, and said whose job it was: the key the teacher's screen shows.
    fingerprint = run.stderr.split("(key ")[1].split(")")[0]
    for process in volunteers:
        said = process.stderr.read()
        assert "Joining the job of" in said and f"key {fingerprint}" in said, said[-500:]
