"""The command line: p2p-attendance {demo, enroll, classes, run, volunteer, peers, gui}."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from p2p_attendance import __version__
from p2p_attendance.peertext import displayable
from p2p_attendance.swarm.peers import PeerState

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C before anything was saved, as shells report it


def _engine_factory():
    from p2p_attendance.compute.engine import FaceEngine

    return FaceEngine()


# -- progress ---------------------------------------------------------------------------------------
class ProgressPrinter:
    """A one-line progress bar on stderr (a line every few seconds when stderr is not a terminal).

    Warnings are counted, not repeated: a text is printed the 1st, 10th, 100th... time it comes,
    and only the first MAX_WARNING_TEXTS different texts are printed at all, so a storm of wrong
    join codes is a few lines, not thousands (the run log has each one)."""

    MAX_WARNING_TEXTS = 100

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.warning_counts: dict[str, int] = {}
        self.unlisted_warnings = 0

    def __call__(self, kind: str, payload) -> None:
        if kind == "warning":
            self._warning(str(payload))
        elif kind == "peer":
            if PeerState(payload["state"]).gone:
                self._line(f"peer {payload['name']} ({payload['address']}) {payload['state']} after {payload['frames']} frames")
        elif kind == "progress":
            now = time.monotonic()
            done, total = payload["done"], max(1, payload["total"])
            if not self.tty and now - self.last < 5 and done < total:
                return
            self.last = now
            width = 30
            filled = int(width * done / total)
            eta = payload["eta_s"]
            eta_text = f"ETA {int(eta // 60)}:{int(eta % 60):02d}" if eta is not None else "ETA --:--"
            text = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} frames  {payload['fps']:.1f} frames/s  {eta_text}"
            if self.tty:
                self.stream.write("\r" + text)
                if done >= total:
                    self.stream.write("\n")
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def _warning(self, text: str) -> None:
        count = self.warning_counts.get(text, 0) + 1
        if count == 1 and len(self.warning_counts) >= self.MAX_WARNING_TEXTS:
            self.unlisted_warnings += 1
            if self.unlisted_warnings == 1:
                self._line(f"warning: more than {self.MAX_WARNING_TEXTS} different warnings; the others are only counted (see the log)")
            return
        self.warning_counts[text] = count
        if count == 1:
            self._line(f"warning: {text}")
        elif count in (10, 100, 1_000, 10_000, 100_000):
            self._line(f"warning (×{count} so far): {text}")

    def warning_summary(self) -> list[str]:
        """One line per warning that came more than once, and the count of those not listed."""
        lines = [f"{text} (×{count} in all)" for text, count in self.warning_counts.items() if count > 1]
        if self.unlisted_warnings:
            lines.append(f"{self.unlisted_warnings} more warning(s) not listed: see the log")
        return lines

    def _line(self, text: str) -> None:
        # Event text can hold what a peer sent: printed under the one rule for peer text.
        self.stream.write(("\n" if self.tty else "") + displayable(text, 2000) + "\n")
        self.stream.flush()


def _install_sigint(stop: threading.Event) -> None:
    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping (Ctrl-C again to quit at once)", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, handler)


# -- commands ---------------------------------------------------------------------------------------
def cmd_enroll(args) -> int:
    """`enroll`: turn a folder of student photos into a class (Ctrl-C stops without saving)."""
    from p2p_attendance.errors import EnrollCancelled, RosterError
    from p2p_attendance.roster.enroll import enroll_folder

    stop = threading.Event()
    _install_sigint(stop)  # Ctrl-C stops after the photo being looked at; nothing is saved

    def progress(done: int, total: int, photo: str) -> None:
        print(f"  {done}/{total} {photo}", file=sys.stderr, flush=True)

    try:
        result = enroll_folder(args.photos, args.class_name, _engine_factory, progress=progress, cancelled=stop.is_set)
    except EnrollCancelled as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RosterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    roster = result.roster
    print(f"Class '{roster.name}': {len(roster.students)} students ({len(result.enrolled)} enrolled or updated now).")
    for problem in result.problems:
        print(f"  skipped {problem.file}: {problem.reason}", file=sys.stderr)
    if result.problems:
        print(f"{len(result.problems)} photo(s) skipped; the others were enrolled.", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def cmd_classes(args) -> int:
    """`classes`: list the enrolled classes and their join codes, or rotate one class's code."""
    from p2p_attendance.errors import RosterError
    from p2p_attendance.roster.join_codes import class_join_code, rotate_join_code
    from p2p_attendance.roster.store import list_classes, load_class

    if args.rotate_code:
        try:
            roster = load_class(args.rotate_code)
        except RosterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        code = rotate_join_code(roster.name)
        print(f"New join code for {roster.name}: {code} (from the next job on; students type it once)")
        return EXIT_OK
    classes = list_classes()
    if args.json:
        listing = [
            {"name": c.name, "join_code": class_join_code(c.name), "students": [{"id": s.id, "name": s.name, "photos": len(s.photos)} for s in c.students]}
            for c in classes
        ]
        print(json.dumps(listing, indent=2))
        return EXIT_OK
    if not classes:
        print("No classes yet. Enroll one: p2p-attendance enroll PHOTOS --class NAME")
    for roster in classes:
        print(f"{roster.name} ({len(roster.students)} students)")
        print(f"  join code: {class_join_code(roster.name)}")
        for student in roster.students:
            print(f"  {student.name}  [{student.id}, {len(student.photos)} photo(s)]")
    return EXIT_OK


def _job_options(args):
    from p2p_attendance.compute.engine import DetectionSettings
    from p2p_attendance.job import JobOptions

    return JobOptions(
        sample_fps=args.sample_fps,
        tolerance=args.tolerance,
        presence_threshold=args.presence_threshold,
        workers=args.workers,
        listen=args.listen,
        join_code=args.join_code,
        open_job=args.open,
        detection=DetectionSettings(upsample=args.upsample),
        discovery=not args.no_discovery,
        resume=getattr(args, "resume", False),
        mdns_interfaces=_mdns_interfaces(args),
    )


def _run_job(video, roster, args, out_paths) -> int:
    from p2p_attendance.checkpoint import saved_frames
    from p2p_attendance.errors import CheckpointMismatch, VideoError
    from p2p_attendance.job import AttendanceJob
    from p2p_attendance.swarm.security import key_fingerprint

    saved = saved_frames(video, roster.name)
    if saved and not args.resume and not args.restart:
        # Starting afresh would delete them: the teacher chooses.
        print(f"error: an interrupted run of this video for class '{roster.name}' saved {saved} frames. "
              "Continue it: add --resume. Start over and discard them: add --restart.", file=sys.stderr)
        return EXIT_USAGE
    progress = ProgressPrinter()
    try:
        job = AttendanceJob(video, roster, _job_options(args), on_event=progress)
    except (VideoError, CheckpointMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    requester = job.requester
    from p2p_attendance.discovery import choose_lan_address

    host = choose_lan_address() if not args.listen.startswith("tcp://127.") else "127.0.0.1"
    print(f"Join code: {job.join_code}   (key {key_fingerprint(requester.public_key)})", file=sys.stderr)
    print(f"Volunteers on other computers: p2p-attendance volunteer --connect {requester.connect_line(host)} --join-code {job.join_code}", file=sys.stderr)
    print(f"{job.info.duration_s:.0f} s of video, {requester.total} frames at {args.sample_fps:g} per second; {args.workers} local worker(s).", file=sys.stderr)
    if job.frames_from_checkpoint:
        print(f"Resuming: {job.frames_from_checkpoint} frames already done.", file=sys.stderr)
    stop = threading.Event()
    _install_sigint(stop)
    report = job.run(stop)
    return _finish_job(job, report, out_paths, progress)


def _finish_job(job, report, out_paths, progress: ProgressPrinter) -> int:
    """Show the result, write every report asked for, and only then delete the saved progress:
    a report that could not be written leaves the checkpoint, so nothing of the job is lost."""
    from p2p_attendance.report import format_table, integrity_text

    # First: whatever happens to the files, the teacher sees the result (a name that cannot be
    # written as UTF-8, such as one from an undecodable file name, shows '?' instead of failing).
    print(format_table(report).encode("utf-8", "replace").decode("utf-8"))
    print(f"checks: {integrity_text(report.job.integrity)}", file=sys.stderr)
    for warning in [*progress.warning_summary(), *report.job.warnings]:
        print(f"warning: {displayable(warning, 2000)}", file=sys.stderr)
    written, failed = _write_reports_safely(report, out_paths)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    if failed:
        kept = " The results are kept: run the same command with --resume to write the reports again." if job.finished and job.checkpoint is not None else ""
        print(f"error: could not write {'; '.join(failed)}.{kept}", file=sys.stderr)
    elif job.finished:
        job.discard_checkpoint()
    if not job.finished:
        print(f"stopped early: {report.job.frames_processed}/{report.job.frames_total} frames processed; the reports say PARTIAL. "
              "To finish, run the same command again with --resume.", file=sys.stderr)
        return EXIT_FAILED
    if failed:
        return EXIT_FAILED
    return EXIT_PARTIAL if report.job.warnings else EXIT_OK


REPORT_KINDS = {"xlsx": "Excel workbook", "csv": "CSV file", "json": "JSON report"}


def _write_reports_safely(report, out_paths) -> tuple[list, list[str]]:
    """Write each report on its own: one that fails never stops the others. A file that cannot be
    written where asked (open in Excel, read-only folder) goes to a fallback name in the user's
    data instead. Returns (paths written, a description of each report that could not be)."""
    from p2p_attendance import paths
    from p2p_attendance.report import format_for_path, writer_for

    written, failed = [], []
    out, *_ = out_paths  # --out's extension says its format (checked when parsing); then --csv, --json
    for path, kind in zip(out_paths, (format_for_path(out) if out else "xlsx", "csv", "json")):
        if not path:
            continue
        writer = writer_for(kind)
        try:
            try:
                written.append(writer(report, path))
            except OSError as exc:
                fallback = paths.reports_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(path).name}"
                print(f"error: could not save {path} ({exc.strerror or exc}; is it open in another program?); saving to {fallback}", file=sys.stderr)
                written.append(writer(report, fallback))
        except Exception as exc:  # noqa: BLE001 - any failure of one writer, reported; the others go on
            failed.append(f"the {REPORT_KINDS[kind]} {path} ({type(exc).__name__}: {displayable(str(exc), 300)})")
    return written, failed


def cmd_run(args) -> int:
    """`run`: take attendance of one lecture video for a class and write the report."""
    from p2p_attendance.compute.video import probe_video
    from p2p_attendance.errors import RosterError, VideoError
    from p2p_attendance.job import roster_for_run

    if not args.class_name and not args.roster:
        print("error: say which class: --class NAME (enrolled) or --roster PHOTOS", file=sys.stderr)
        return EXIT_USAGE
    try:
        probe_video(args.video)  # fail fast, before enrolling anything
        roster, problems = roster_for_run(args.class_name, args.roster, _engine_factory)
    except (VideoError, RosterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for problem in problems:
        print(f"  roster photo skipped {problem.file}: {problem.reason}", file=sys.stderr)
    if not roster.students:
        print("error: the class has no enrolled students", file=sys.stderr)
        return EXIT_FAILED
    return _run_job(args.video, roster, args, (args.out, args.csv, args.json))


def cmd_demo(args) -> int:
    """`demo`: compose a short class video from sample faces, enroll it, run the job and report."""
    from p2p_attendance.compute.engine import FaceEngine
    from p2p_attendance.errors import SampleFacesMissing
    from p2p_attendance.roster.enroll import enroll_folder
    from p2p_attendance.tools.demo import DEMO_CLASS, build_demo, demo_workdir

    args.no_discovery = args.no_discovery or not args.advertise  # a demo job is not announced to the LAN
    folder = Path(args.dir) if args.dir else demo_workdir()
    try:
        material = build_demo(folder, FaceEngine())
    except SampleFacesMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Composed {material.video} from sample faces; enrolling {DEMO_CLASS}.", file=sys.stderr)
    result = enroll_folder(material.photos_dir, DEMO_CLASS, _engine_factory)
    for problem in result.problems:
        print(f"  skipped {problem.file}: {problem.reason}", file=sys.stderr)
    out = args.out or str(folder / "demo-attendance.xlsx")
    return _run_job(str(material.video), result.roster, args, (out, args.csv, args.json))


def _local_worker_keypair(secret: str) -> tuple[bytes, bytes] | None:
    """The key a job gave its own worker (through the environment), or None for a fresh one."""
    if not secret:
        return None
    import zmq

    return zmq.curve_public(secret.encode("ascii")), secret.encode("ascii")


def cmd_volunteer(args) -> int:
    """`volunteer`: lend this computer's cores to a teacher's job, found by mDNS or given by --connect."""
    from p2p_attendance.errors import KeyError_
    from p2p_attendance.host import default_volunteer_cores
    from p2p_attendance.job import JOIN_CODE_ENV, LOCAL_KEY_ENV
    from p2p_attendance.lab_defaults import volunteer_defaults
    from p2p_attendance.swarm.security import key_fingerprint, parse_server_key, split_connect
    from p2p_attendance.swarm.sharing import BatteryGuard, SharingService
    from p2p_attendance.swarm.volunteer import JobTarget, Outcome

    lab = volunteer_defaults()  # the lab admin's defaults file; arguments and the environment win
    join_code = args.join_code or os.environ.get(JOIN_CODE_ENV, "") or lab.join_code
    cores = args.cores or lab.cores or default_volunteer_cores()
    name = args.name or _default_name()
    args.connect = args.connect or lab.connect or None
    if not args.connect and args.no_discovery:
        print("error: without discovery, say where the requester is: --connect tcp://HOST:PORT/KEY", file=sys.stderr)
        return EXIT_USAGE
    try:
        endpoint, key = split_connect(args.connect) if args.connect else (None, None)
        if args.server_key:
            key = parse_server_key(args.server_key)
        interfaces = _mdns_interfaces(args)
    except (KeyError_, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    _install_sigint(stop)
    discovery = None if args.no_discovery else _Discovery(name, cores, interfaces, "sharing")
    try:
        if endpoint and key is None:
            key = discovery.key_for(endpoint, stop) if discovery else None
            if key is None:
                print("error: the requester's key is missing: use the whole --connect line the teacher's app shows (tcp://HOST:PORT/KEY)", file=sys.stderr)
                return EXIT_USAGE
        finder = None
        if endpoint is None:
            from p2p_attendance.swarm.jobfinder import JobFinder

            finder = JobFinder(discovery.directory, join_code, on_hint=lambda text: print(text, file=sys.stderr), confirm_job=_announce_job)
        service = SharingService(
            cores=cores,
            name=name,
            join_code=join_code,
            target=JobTarget(endpoint, key, join_code) if endpoint else None,
            find_jobs=finder,
            on_status=_StatusPrinter(args.quiet),
            single_job=args.single_job,
            paused=BatteryGuard() if args.only_on_power else None,
            client_keypair=_local_worker_keypair(os.environ.get(LOCAL_KEY_ENV, "")),
        )
        if not args.quiet:
            where = f"{endpoint} (key {key_fingerprint(key)})" if endpoint else "jobs found on this network"
            print(f"Sharing {cores} core(s) with {where}. Ctrl-C to stop.", file=sys.stderr)
        outcome = service.run(stop)
    finally:
        if discovery:
            discovery.close()
    if outcome is Outcome.REJECTED and endpoint:
        print(f"rejected by the requester: {displayable(service.last_message, 500)}", file=sys.stderr)
        return EXIT_FAILED
    if outcome is Outcome.LOST and endpoint and not any(o is Outcome.FINISHED for o in service.outcomes):
        print(f"could not reach a requester at {endpoint} (wrong address or key, or the job is over)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _announce_job(peer) -> bool:
    """The CLI joins a job found on the network by itself, but says whose it is, with the key
    fingerprint to compare with the teacher's screen."""
    from p2p_attendance.errors import KeyError_
    from p2p_attendance.swarm.security import key_fingerprint, parse_server_key

    try:
        fingerprint = key_fingerprint(parse_server_key(peer.server_key or ""))
    except KeyError_:
        return False
    print(f"Joining the job of {peer.name!r}, class {peer.class_name or '(not given)'!r}, key {fingerprint}", file=sys.stderr)
    return True


class _StatusPrinter:
    """Volunteer status on stderr: every change of state, and progress at most every 10 s."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.last = ("", 0.0)

    def __call__(self, status) -> None:
        now = time.monotonic()
        if self.quiet or (status.state == self.last[0] and now - self.last[1] < 10):
            return
        self.last = (status.state, now)
        job = f" job {status.job_id}" if status.job_id else ""
        line = f"[{status.state}] {status.endpoint}{job} frames done: {status.frames_done} {status.message}".rstrip()
        print(displayable(line, 2000), file=sys.stderr)  # the requester's words: one line, no escapes


class _Discovery:
    """This copy's mDNS advert and view of the others; mDNS failing never stops the command."""

    def __init__(self, name: str, cores: int, interfaces, state: str):
        from p2p_attendance.discovery import BackgroundAdvertiser, PeerDirectory

        self.directory = PeerDirectory(interfaces)
        self.advertiser = BackgroundAdvertiser(
            name, cores, interfaces, state,
            on_error=lambda exc: print(f"mDNS advertising unavailable ({exc}); --connect still works", file=sys.stderr),
        )

    def key_for(self, endpoint: str, stop, timeout: float = 5.0):
        from p2p_attendance.swarm.security import parse_server_key

        peer = self.directory.wait_for(lambda p: endpoint in p.endpoints() and bool(p.server_key), timeout)
        return parse_server_key(peer.server_key) if peer else None

    def close(self) -> None:
        self.advertiser.close(wait=5)
        self.directory.close()


def _mdns_interfaces(args):
    from p2p_attendance.discovery import resolve_interfaces

    return resolve_interfaces(getattr(args, "mdns_interface", None))


def _default_name() -> str:
    from p2p_attendance.host import volunteer_name

    return volunteer_name()


def cmd_peers(args) -> int:
    """`peers`: list the other copies of the app that mDNS finds on this network."""
    from p2p_attendance.discovery import peers_command, resolve_interfaces

    try:
        interfaces = resolve_interfaces(args.mdns_interface)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return peers_command(args.timeout, args.json, interfaces)


def cmd_bench(args) -> int:
    """`bench`: the benchmarks in tools/bench.py."""
    from p2p_attendance.tools.bench import run

    return run(args)


def cmd_gui(args) -> int:
    """`gui`: open the desktop app."""
    from p2p_attendance.gui.app import run_gui

    return run_gui(args)


# -- parser -----------------------------------------------------------------------------------------
def _ranged(kind, low, high, name):
    """argparse type: a number within the limits the rest of the app (and the protocol) accepts."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be between {low} and {high}")
        return value

    return parse


def _join_code(text: str) -> str:
    if not 1 <= len(text.strip()) <= 32:
        raise argparse.ArgumentTypeError("a join code has 1 to 32 characters")
    return text.strip()


def _report_path(kind: str | None):
    """argparse type for a report's file name: --out's extension picks the format (and must be one
    of them); --csv and --json accept any name but one that says it is another format."""
    from p2p_attendance.report import format_for_path

    def parse(text: str) -> str:
        try:
            named = format_for_path(text)
        except ValueError as exc:
            if kind is None:
                raise argparse.ArgumentTypeError(str(exc)) from None
            return text  # e.g. --csv attendance.txt
        if kind is not None and named != kind:
            raise argparse.ArgumentTypeError(
                f"{Path(text).name} names a .{named} file but this option writes {kind.upper()}; "
                f"use --out {Path(text).name}, or a name ending in .{kind}")
        return text

    return parse


def _add_job_args(p: argparse.ArgumentParser) -> None:
    from p2p_attendance.attendance.tally import DEFAULT_PRESENCE_THRESHOLD
    from p2p_attendance.compute.matching import DEFAULT_TOLERANCE
    from p2p_attendance.compute.video import DEFAULT_SAMPLE_FPS
    from p2p_attendance.job import default_workers
    from p2p_attendance.swarm import protocol as proto  # the wire's limit is the CLI's: one source

    p.add_argument("--out", type=_report_path(None),
                   help="report to write; its extension picks the format: .xlsx (Excel workbook), .csv or .json")
    p.add_argument("--csv", type=_report_path("csv"), help="also write the attendance as CSV to this file")
    p.add_argument("--json", type=_report_path("json"), help="also write the full report as JSON to this file")
    p.add_argument("--sample-fps", type=_ranged(float, 0.05, 30, "--sample-fps"), default=DEFAULT_SAMPLE_FPS,
                   help="frames looked at per second of video (default %(default)s)")
    p.add_argument("--tolerance", type=_ranged(float, 0.1, 1.5, "--tolerance"), default=DEFAULT_TOLERANCE,
                   help="face distance below which two faces are the same person (default %(default)s)")
    p.add_argument("--presence-threshold", type=_ranged(float, 0.0, 1.0, "--presence-threshold"), default=DEFAULT_PRESENCE_THRESHOLD,
                   help="share of time windows a student must be seen in (default %(default)s)")
    p.add_argument("--upsample", type=int, default=1, choices=range(proto.MAX_UPSAMPLE + 1), metavar=f"{{0..{proto.MAX_UPSAMPLE}}}",
                   help="detector upsampling: 1 finds faces down to ~40 px (default 1)")
    p.add_argument("--workers", type=_ranged(int, 0, 256, "--workers"), default=default_workers(),
                   help="local worker processes (default: cores-1; 0 = coordinate only)")
    p.add_argument("--listen", default="tcp://0.0.0.0:0", help="where volunteers connect (default: any address, a free port)")
    p.add_argument("--join-code", type=_join_code,
                   help="the code volunteers must give for this job only (default: the class's own code, the same every lecture; see classes --rotate-code)")
    p.add_argument("--open", action="store_true", help="accept any volunteer on this network without a code (trusted labs)")
    p.add_argument("--no-discovery", action="store_true", help="do not use mDNS")
    p.add_argument("--mdns-interface", action="append", help="restrict mDNS to this address (repeatable; or P2P_ATTENDANCE_MDNS_INTERFACES)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue an interrupted run of this video and class from its saved progress")
    again.add_argument("--restart", action="store_true", help="start over, discarding the saved progress of an interrupted run of this video and class")


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: every subcommand, its arguments and its handler."""
    parser = argparse.ArgumentParser(prog="p2p-attendance", description="Class attendance from a lecture video, shared across the classroom's computers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--self-test", action="store_true", help="check this installation (face models, a short job on loopback) and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="compose a short class video from sample faces, enroll, run, report")
    p.add_argument("--dir", help="where to put the demo's files (default: a new temporary folder)")
    p.add_argument("--advertise", action="store_true", help="announce the demo job on the LAN so volunteers can join")
    _add_job_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("enroll", help="enroll a folder of student photos into a class")
    p.add_argument("photos", help="folder: one sub-folder per student, or photos named after the student; optional roster.csv")
    p.add_argument("--class", dest="class_name", required=True, help="class name")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("classes", help="list classes and their students")
    p.add_argument("--json", action="store_true", help="print the classes as JSON")
    p.add_argument("--rotate-code", metavar="CLASS", help="give the class a new join code (the old one stops working; its count of wrong guesses starts again)")
    p.set_defaults(func=cmd_classes)

    p = sub.add_parser("run", help="take attendance from a video")
    p.add_argument("video", help="the lecture's video file (MP4, MOV, MKV, AVI...)")
    p.add_argument("--class", dest="class_name", help="an enrolled class")
    p.add_argument("--roster", help="a folder of photos to enroll on the fly (cached)")
    _add_job_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("volunteer", help="share this computer's CPU with a requester")
    p.add_argument("--connect", help="tcp://HOST:PORT/KEY as shown by the requester (default: the lab defaults file, else find jobs by mDNS)")
    p.add_argument("--server-key", help="the requester's key, if not part of --connect")
    p.add_argument("--join-code", type=_join_code, help="the job's join code (or set P2P_ATTENDANCE_JOIN_CODE, or the lab defaults file)")
    p.add_argument("--cores", type=_ranged(int, 1, 256, "--cores"), help="cores to share (default: the lab defaults file, else half)")
    p.add_argument("--name", help="name shown to the teacher")
    p.add_argument("--single-job", action="store_true", help="leave after one job")
    p.add_argument("--only-on-power", action="store_true", help="take no new work while the computer runs on battery")
    p.add_argument("--no-discovery", action="store_true", help="do not use mDNS")
    p.add_argument("--mdns-interface", action="append", help="restrict mDNS to this address (repeatable; or P2P_ATTENDANCE_MDNS_INTERFACES)")
    p.add_argument("--quiet", action="store_true", help="print only errors")
    p.set_defaults(func=cmd_volunteer)

    p = sub.add_parser("peers", help="list the copies of the app on this network")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to listen for other copies (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the copies found as JSON")
    p.add_argument("--mdns-interface", action="append", help="restrict mDNS to this address (repeatable)")
    p.set_defaults(func=cmd_peers)

    p = sub.add_parser("bench", help="measure speed, scaling and memory on this computer (~4 min on 2 cores; --quick: under a minute)")
    from p2p_attendance.tools.bench import add_arguments as add_bench_arguments

    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("gui", help="open the desktop app")
    p.add_argument("--video", help="open with this video chosen")
    p.add_argument("--class", dest="class_name", help="open with this enrolled class chosen")
    p.add_argument("--roster", help="open with this folder of student photos as the class")
    p.add_argument("--screenshot", help="run the given job, save a PNG of each screen into this folder, exit")
    p.set_defaults(func=cmd_gui)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `p2p-attendance` command: parse, set up logging, run the subcommand; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--self-test"]:  # before parsing: it needs no subcommand
        from p2p_attendance.tools.selftest import main as self_test

        return self_test(argv[1:])
    args = build_parser().parse_args(argv)
    from p2p_attendance.logs import setup_logging

    setup_logging(args.verbose, run_log=args.command if args.command in ("run", "demo", "gui") else None)
    from p2p_attendance.errors import UserError

    try:
        return args.func(args)
    except UserError as exc:  # a message for people that the command did not word itself
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def gui_main() -> int:
    """The `p2p-attendance-gui` entry point: `p2p-attendance gui` with the same arguments."""
    return main(["gui", *sys.argv[1:]])
