"""`p2p-attendance bench --simulate N [N ...]`: how the swarm scales, without the face work.

The real requester (`AttendanceJob`, workers=0, on a thread here) hands a synthetic 720p video to
N real volunteer processes (`tools/simulate_volunteer`: the real volunteer, admission and CurveZMQ
included, whose workers sleep S ms a frame and return a valid 4-face answer). Two paths: an MPEG-4
file (the requester decodes and JPEG-encodes each sampled frame) and an H.264 file with a
keyframe every second (sampled keyframes travel as they are). Efficiency = ideal time (frames x S
/ N) over measured time, both from the moment all N volunteers have joined. With --link-mbit the
volunteers sit in a network namespace behind a veth pair rate-limited by tc tbf; the requester in
another (root only; skipped with one line where that is not allowed).
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIM_CODE = "246810"
BATCH_SIZE = 4
INNER_ENV = "P2P_ATTENDANCE_SIMULATE_NETNS"  # set when this process was started inside the requester's namespace


@dataclass
class SimRun:
    """One simulated run's measurements: N volunteers on one path (one row of the table)."""

    volunteers: int
    path: str
    frames: int  # distinct frames with a result (each counted once)
    wall_s: float  # all joined -> last result
    ideal_s: float
    efficiency: float
    cpu_pct: float  # the requester's process, % of one core, over the whole job
    bytes_per_frame: float
    reissued: int
    copies_won: int
    copies_lost: int
    volunteer_loop_ms_s: float  # CPU ms per wall second of a volunteer's own process (not its workers)
    total: int = 0  # frames the video has at 1 frame/s
    quarantined: int = 0  # peers the requester caught (the stand-in's answers must pass every check)
    link_mbit: float | None = None  # the volunteers' link, when rate-limited
    load: float = 0.0  # this machine's 1-minute load average at the end of the run (other work distorts a run)
    bytes_after_join: float = 0.0  # bytes the requester sent from the moment all had joined
    link_goodput: float | None = None  # bytes a second of TCP payload the link carried in a bulk transfer (measure_goodput)

    @property
    def link_bytes_s(self) -> float | None:
        """What the link can carry of the job's bytes a second: its measured TCP goodput (the rate
        less Ethernet, IP and TCP headers, ~4 %), or its rate where that was not measured."""
        if not self.link_mbit:
            return None
        return self.link_goodput or self.link_mbit * 1e6 / 8

    @property
    def link_fps(self) -> float | None:
        """Frames a second the link can carry: its bytes a second over the bytes sent per frame
        (payloads, check copies and messages)."""
        return self.link_bytes_s / self.bytes_per_frame if self.link_bytes_s and self.bytes_per_frame else None

    @property
    def bound_s(self) -> float:
        """The shortest time the run could take: the ideal, or, if longer, the time the link needs
        for the bytes sent from the moment all had joined (batches sent to the first volunteers
        before that are not the link's work in the measured time)."""
        if not self.link_bytes_s:
            return self.ideal_s
        return max(self.ideal_s, self.bytes_after_join / self.link_bytes_s)

    @property
    def bound_efficiency(self) -> float:
        """The shortest possible time over the measured one (the efficiency against min(ideal, link))."""
        return self.bound_s / self.wall_s


RESOLUTIONS = {720: (1280, 720), 1080: (1920, 1080)}
# A fixed grain over the 1080p picture (standard deviation in grey levels): without it the synthetic
# picture compresses far better than a lecture hall (56 KiB a JPEG instead of the ~150 KB the issue
# measured), and a link could not be the limit at any N.
GRAIN_1080 = 4.0


def make_video(folder: Path, codec: str, seconds: int, fps: int = 2, height: int = 720) -> Path:
    """A synthetic video (720: 1280x720, 1080: 1920x1080 with a fixed grain): moving bars on a
    gradient (the stand-in never looks at it)."""
    import av

    width, height = RESOLUTIONS[height]
    path = folder / f"sim-{codec}-{height}p-{seconds}s.mp4"
    if path.exists():
        return path
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264" if codec == "h264" else "mpeg4", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.gop_size = fps  # a keyframe every second: every sample is one on the H.264 path
    if codec == "h264":
        stream.codec_context.options = {"bf": "0", "preset": "ultrafast", "keyint_min": str(fps), "sc_threshold": "0",
                                        # a fixed quantiser: every 1080p keyframe ~106 KiB (ultrafast codes the grain at ~900 KiB)
                                        **({"qp": "24"} if height >= 1080 else {})}
    else:
        stream.codec_context.bit_rate = 2_000_000 * width * height // (1280 * 720)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) * 255 // (width + height))], axis=-1).astype(np.uint8)
    if height >= 1080:
        grain = np.random.default_rng(0).normal(0.0, GRAIN_1080, base.shape)
        base = np.clip(base + grain, 0, 255).astype(np.uint8)
    bar = width // 16
    for n in range(seconds * fps):
        image = base.copy()
        image[:, (n * 37) % (width - bar) : (n * 37) % (width - bar) + bar] = (n * 53) % 256
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def make_roster():
    """A roster of 4 students with random encodings: the stand-in workers match against it."""
    from p2p_attendance.roster.store import ClassRoster, EnrolledPhoto, EnrolledStudent

    rng = np.random.default_rng(1)
    students = [EnrolledStudent(f"s{i:02d}", f"Student {i}", [EnrolledPhoto("x.jpg", "0" * 64, list(map(float, rng.normal(0, 0.09, 128))))])
                for i in range(4)]
    return ClassRoster("simulation", students)


def _cpu_s(pid: int) -> float | None:
    """CPU seconds of a process so far; None once it is gone (a 0 there made the last sample
    smaller than the first: the negative loop CPU of earlier N = 16 and 32 runs)."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    except psutil.Error:
        return None


def run_once(video: Path, path: str, volunteers: int, sleep_ms: float, timeout_s: float, netns: tuple[str, str] | None = None,
             link_mbit: float | None = None, link_goodput: float | None = None) -> SimRun:
    """Run one simulated job: the requester on a thread, `volunteers` stand-in volunteer processes."""
    from p2p_attendance.job import JOIN_CODE_ENV, AttendanceJob, JobOptions
    from p2p_attendance.swarm.checks import DEFAULT_SHARE
    from p2p_attendance.swarm.peers import PeerState

    joined: set[str] = set()
    clock: dict[str, float | None] = {"all_joined": None, "last": None}
    at_join = {"frames": 0, "bytes": 0}

    seen: set[int] = set()

    def on_event(kind, payload):
        now = time.monotonic()
        if kind == "frame" and payload.index not in seen:  # a frame renamed later (a batch seam's names) is no new result
            seen.add(payload.index)
            clock["last"] = now
        elif kind == "peer" and PeerState(payload.get("state")).active:
            joined.add(payload["id"])
            if clock["all_joined"] is None and len(joined) >= volunteers:
                clock["all_joined"] = now
                at_join["frames"] = len(job.requester.results)
                at_join["bytes"] = job.requester.bytes_sent

    options = JobOptions(sample_fps=1.0, workers=0, listen="tcp://0.0.0.0:0" if netns else "tcp://127.0.0.1:0", join_code=SIM_CODE,
                         discovery=False, checkpoint=False, persistent_key=False, batch_size=BATCH_SIZE, keyframes=path == "h264",
                         # A lone stand-in has no second volunteer to be checked against: the check copy would go to
                         # this computer's real engine, which rightly finds other faces and quarantines it.
                         validation_share=DEFAULT_SHARE if volunteers > 1 else 0.0)
    job = AttendanceJob(video, make_roster(), options, on_event=on_event)
    stop = threading.Event()
    failure: list[BaseException] = []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()

    def target():
        try:
            job.run(stop)
        except BaseException as exc:  # reported below
            failure.append(exc)

    thread = threading.Thread(target=target, name="simulated-requester", daemon=True)
    thread.start()
    env = dict(os.environ, **{JOIN_CODE_ENV: SIM_CODE})
    processes = []
    for n in range(volunteers):
        line = job.requester.connect_line(requester_host(n)) if netns else job.loopback_line
        command = [sys.executable, "-m", "p2p_attendance.tools.simulate_volunteer", str(sleep_ms), "--connect", line, "--cores", "1",
                   "--name", f"sim-{n + 1}", "--single-job", "--no-discovery", "--quiet"]
        if netns:
            command = ["ip", "netns", "exec", netns[0], *command]
        processes.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    loop_cpu: list[float] = []
    try:
        watched = latest = None
        thread.join(1.0)
        while thread.is_alive():
            if time.monotonic() - started > timeout_s:
                stop.set()
                thread.join(30)
                raise TimeoutError(f"the simulated job with {volunteers} volunteers did not finish in {timeout_s:.0f} s")
            # Every volunteer gone with frames still to do (e.g. none got in before its admission timed
            # out). With all frames in, the job may still be verifying sightings on this computer.
            if processes and all(p.poll() is not None for p in processes) and len(job.requester.results) < job.requester.total:
                stop.set()
                thread.join(30)
                raise RuntimeError(f"all {volunteers} volunteers left before the job ended (a machine too loaded to admit them in time?)")
            if clock["all_joined"] is not None and processes and processes[0].poll() is None:
                # Sampled while the volunteer runs: once it has left, its CPU can no longer be read.
                sample = (time.monotonic(), _cpu_s(_volunteer_pid(processes[0], netns)))
                if sample[1] is not None:
                    watched, latest = (watched or sample), sample
            thread.join(0.2)
        if watched is not None and latest[0] > watched[0]:
            loop_cpu.append(1000 * (latest[1] - watched[1]) / (latest[0] - watched[0]))
        after = resource.getrusage(resource.RUSAGE_SELF)
        if failure:
            raise failure[0]
    finally:
        for process in processes:
            try:
                process.wait(timeout=20)  # they leave on the requester's BYE
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    cpu_s = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    requester = job.requester
    frames = len(requester.results)
    begin = clock["all_joined"] or started
    wall = max(1e-6, (clock["last"] or time.monotonic()) - begin)
    ideal = (frames - at_join["frames"]) * sleep_ms / 1000.0 / volunteers
    stats = requester.scheduler.stats
    return SimRun(volunteers, path, frames, wall, ideal, ideal / wall, 100.0 * cpu_s / max(1e-6, time.monotonic() - started),
                  requester.bytes_sent / max(1, frames), stats.reissued, stats.copies_won, stats.copies_lost,
                  loop_cpu[0] if loop_cpu else float("nan"), requester.total, len(requester.validation["quarantined"]),
                  link_mbit if netns else None, os.getloadavg()[0], requester.bytes_sent - at_join["bytes"], link_goodput if netns else None)


def _volunteer_pid(process: subprocess.Popen, netns) -> int:
    """The volunteer's own process (`ip netns exec` execs it, so the pid is the same)."""
    return process.pid


def table(runs: list[SimRun]) -> str:
    """The simulation's runs as a text table; behind a link, what it can carry and the efficiency
    against the slower of the ideal and that."""
    from p2p_attendance.tools.bench import format_table

    linked = any(r.link_fps for r in runs)
    head = ["N", "path", "frames", "wall s", "ideal s", "efficiency"]
    if linked:
        head += ["link goodput Mbit/s", "link frames/s", "link-limited ideal s", "efficiency vs min(ideal, link)"]
    head += ["requester CPU %", "bytes/frame", "re-issued", "copies won/lost", "volunteer loop CPU ms/s", "load"]
    rows = []
    for r in runs:
        row = [str(r.volunteers), r.path, str(r.frames), f"{r.wall_s:.1f}", f"{r.ideal_s:.1f}", f"{r.efficiency:.2f}"]
        if linked:
            row += [f"{r.link_bytes_s * 8 / 1e6:.1f}" if r.link_bytes_s else "-", f"{r.link_fps:.0f}" if r.link_fps else "-",
                    f"{r.bound_s:.1f}", f"{r.bound_efficiency:.2f}"]
        row += [f"{r.cpu_pct:.0f}", f"{r.bytes_per_frame / 1024:.1f} KiB", str(r.reissued), f"{r.copies_won}/{r.copies_lost}",
                f"{r.volunteer_loop_ms_s:.1f}", f"{r.load:.1f}"]
        rows.append(row)
    return format_table(head, rows)


# -- rate-limited link -------------------------------------------------------------------------------
def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


VOLUNTEER_SIDE = "10.77.0.2"  # the volunteers' end of the veth pair


def requester_host(n: int) -> str:
    """The requester's address volunteer n connects to behind the link (one per volunteer)."""
    return f"10.77.2.{n + 1}"


def make_link(mbit: float, volunteers: int = 1) -> tuple[str, str, str] | str:
    """Two namespaces joined by a veth pair, the requester's side limited to `mbit` by tc tbf
    (what it sends: the frames). Returns (requester ns, volunteer ns, requester address) or why not.

    Each volunteer gets an address of its own (10.77.1.n, by a route to requester_host(n)): the
    requester tells machines apart by address, so with one address for all it took them for one
    machine (3 connections at most, and no other machine to check their work)."""
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "no ip/tc on this machine"
    tag = uuid.uuid4().hex[:6]
    req, vol = f"p2psim-req-{tag}", f"p2psim-vol-{tag}"
    try:
        _ip("netns", "add", req)
        _ip("netns", "add", vol)
        _ip("link", "add", f"vr{tag}", "netns", req, "type", "veth", "peer", "name", f"vv{tag}", "netns", vol)
        for ns, dev, address in ((req, f"vr{tag}", "10.77.0.1/16"), (vol, f"vv{tag}", f"{VOLUNTEER_SIDE}/16")):
            _ip("-n", ns, "addr", "add", address, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        for n in range(volunteers):
            _ip("-n", req, "addr", "add", f"{requester_host(n)}/16", "dev", f"vr{tag}")
            _ip("-n", vol, "addr", "add", f"10.77.1.{n + 1}/16", "dev", f"vv{tag}")
            _ip("-n", vol, "route", "add", f"{requester_host(n)}/32", "dev", f"vv{tag}", "src", f"10.77.1.{n + 1}")
        subprocess.run(["tc", "-n", req, "qdisc", "add", "dev", f"vr{tag}", "root", "tbf", "rate", f"{mbit}mbit", "burst", "64kb",
                        "latency", "50ms"], check=True, capture_output=True, timeout=10)
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired) as exc:
        drop_link((req, vol, ""))
        detail = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else str(exc)
        return f"cannot create a network namespace here ({detail})"
    return req, vol, "10.77.0.1"


GOODPUT_PORT = 5299
GOODPUT_S = 3.0
GOODPUT_CONNECTIONS = 8
# Counts what arrives on `connections` TCP connections (port GOODPUT_PORT, in the volunteers' namespace)
# and prints the bytes a second between the first and the last byte.
_GOODPUT_SINK = """
import socket, sys, threading, time
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
server.settimeout(20)
got, times = [0], []
def drain(conn):
    while data := conn.recv(1 << 20):
        got[0] += len(data)
        times.append(time.monotonic())
threads = [threading.Thread(target=drain, args=(server.accept()[0],)) for _ in range(int(sys.argv[2]))]
start = time.monotonic()
[t.start() for t in threads]
[t.join(60) for t in threads]
print(got[0] / max(1e-6, times[-1] - start))
"""


def measure_goodput(volunteer_ns: str, connections: int = GOODPUT_CONNECTIONS, seconds: float = GOODPUT_S) -> float | None:
    """What the link carries of TCP payload, bytes a second: `connections` bulk connections from
    this process (in the requester's namespace) for `seconds`. The rate less Ethernet, IP and TCP
    headers and what TCP loses to the queue's drops: the most any protocol over TCP gets through.
    None (and one line) where it cannot be measured."""
    import socket

    sink = subprocess.Popen(["ip", "netns", "exec", volunteer_ns, sys.executable, "-c", _GOODPUT_SINK, str(GOODPUT_PORT), str(connections)],
                            stdout=subprocess.PIPE, text=True)
    try:
        chunk = bytes(1 << 16)
        deadline = time.monotonic() + 10
        sockets = []
        while len(sockets) < connections and time.monotonic() < deadline:
            try:
                sockets.append(socket.create_connection((VOLUNTEER_SIDE, GOODPUT_PORT), timeout=10))
            except OSError:
                time.sleep(0.1)
        end = time.monotonic() + seconds

        def pump(sock):
            with sock:
                while time.monotonic() < end:
                    try:
                        sock.sendall(chunk)
                    except OSError:
                        return
        threads = [threading.Thread(target=pump, args=(sock,)) for sock in sockets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 30)
        out, _ = sink.communicate(timeout=60)
        return float(out.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"the link's goodput could not be measured ({exc}): efficiency against its rate", flush=True)
        return None
    finally:
        if sink.poll() is None:
            sink.kill()


def drop_link(link: tuple[str, str, str]) -> None:
    """Delete the two network namespaces make_link created (their veth pair goes with them)."""
    for ns in link[:2]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)


# -- entry ---------------------------------------------------------------------------------------------
def simulate(counts: list[int], sleep_ms: float, frames: int, paths: list[str], link_mbit: float | None = None, timeout_s: float = 1800,
             resolution: int = 720) -> int:
    """Print the table for each N and path; 0 when every run finished."""
    from p2p_attendance.tools.bench import machine_lines

    if link_mbit and not os.environ.get(INNER_ENV):
        link = make_link(link_mbit, max(counts))
        if isinstance(link, str):
            print(f"simulation behind {link_mbit} Mbit/s skipped: {link}")
            return 0
        try:  # the requester side runs in its own namespace: this command again, inside it
            argv = [sys.executable, "-m", "p2p_attendance.tools.simulate", *map(str, counts), "--sleep-ms", str(sleep_ms),
                    "--frames", str(frames), "--paths", *paths, "--link-mbit", str(link_mbit), "--resolution", str(resolution)]
            env = dict(os.environ, **{INNER_ENV: f"{link[1]},{link[2]}"})
            return subprocess.run(["ip", "netns", "exec", link[0], *argv], env=env, timeout=timeout_s * len(counts) * len(paths), check=False).returncode
        finally:
            drop_link(link)
    netns = tuple(os.environ[INNER_ENV].split(",")) if os.environ.get(INNER_ENV) else None
    for line in machine_lines():
        print(line, flush=True)
    width, height = RESOLUTIONS[resolution]
    print(f"stand-in: {sleep_ms:.0f} ms a frame, {frames} frames at 1 frame/s, {width}x{height}, batches of {BATCH_SIZE}"
          + (f", volunteers behind {link_mbit} Mbit/s (tc tbf)" if netns else ", loopback"), flush=True)
    goodput = measure_goodput(netns[0]) if netns else None
    if goodput:
        print(f"the link carries {goodput * 8 / 1e6:.1f} Mbit/s of TCP payload ({GOODPUT_CONNECTIONS} bulk connections, {GOODPUT_S:.0f} s)", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="p2p-attendance-sim-"))
    runs = []
    try:
        for path in paths:
            video = make_video(folder, "h264" if path == "h264" else "mpeg4", frames, height=resolution)
            for n in counts:
                run = run_once(video, path, n, sleep_ms, timeout_s, netns, link_mbit, goodput)
                runs.append(run)
                print(f"  .. N={n} {path}: efficiency {run.efficiency:.2f} (against min(ideal, link) {run.bound_efficiency:.2f}), "
                      f"{run.reissued} re-issued, load {run.load:.1f}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(table(runs))
    return 0


if __name__ == "__main__":
    from p2p_attendance.tools.bench import main

    sys.exit(main(["--simulate", *sys.argv[1:]]))
