"""Issue 13, items 3 and 4: anyone on the LAN against the requester without the code, and the join
code itself (SPAKE2 admission, a per-job attempt budget, the data socket behind ZAP)."""
import resource
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest
import zmq
from conftest import CODE, RunningJob
from zmq.utils import z85

from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.jobfinder import JobFinder
from p2p_attendance.swarm.security import AttemptLimiter, RequesterPake, VolunteerPake, client_socket_options, split_connect
from p2p_attendance.swarm.volunteer import AdmissionRefused, JobTarget, Outcome, admit


# -- the policy -------------------------------------------------------------------------------------
def test_attempt_budget_makes_a_million_guesses_take_months_but_a_mistyping_student_waits_seconds():
    limiter = AttemptLimiter(burst=20, refill_s=30.0, now=0.0)
    now, checked = 0.0, 0
    while now < 24 * 3600:  # a guesser that tries as fast as it is let, for a day
        if limiter.start(now) == 0:
            limiter.finish(now, failed=True)
            checked += 1
        now += 0.5
    per_s = (checked - 20) / (24 * 3600)
    days_for_all_codes = 10**6 / per_s / 86400
    print(f"guesses checked in a day: {checked}; {per_s:.4f}/s; 10^6 codes in {days_for_all_codes:.0f} days")
    assert days_for_all_codes > 60
    # A student who mistypes twice on a fresh job is answered at once, every time.
    fresh = AttemptLimiter(now=0.0)
    for t in (0.0, 5.0, 10.0):
        assert fresh.start(t) == 0
        fresh.finish(t, failed=t < 10)
    # After a guesser emptied the bucket, the wait is one refill, not a lockout.
    while (wait := limiter.start(now)) == 0:
        limiter.finish(now, failed=True)
    assert 0 < wait <= 30.0
    # Honest joins give their token back: forty students at once, the bucket stays full.
    crowd = AttemptLimiter(burst=20, now=0.0)
    for _ in range(40):
        assert crowd.start(1.0) == 0
        crowd.finish(1.0, failed=False)
    assert crowd.tokens == 20
    # Forty at the very same moment: twenty start, the others are told to come back in a second.
    waits = [crowd.start(1.5) for _ in range(40)]
    assert waits.count(0) == 20 and set(waits) == {0, 1.0}
    for _ in range(20):
        crowd.finish(1.6, failed=False)
    # An abandoned attempt (it learned nothing) gives its token back too.
    assert crowd.start(2.0) == 0
    crowd.finish(2.0, failed=False)
    assert crowd.held == 0


def test_a_volunteer_does_not_retry_a_requester_key_that_failed_confirmation():
    class Directory:
        def __init__(self, peers):
            self.peers = peers

        def snapshot(self):
            return self.peers

    class Peer:
        state, name, job_id, open_job, port, protocol_version = "requesting", "fake", "job-1", False, 1, proto.PROTOCOL_VERSION
        server_key = zmq.curve_keypair()[0].decode()

        def endpoints(self):
            return [f"tcp://127.0.0.1:{listener.getsockname()[1]}"]

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        finder = JobFinder(Directory([Peer()]), "123456", wait_s=0.3)
        stop = threading.Event()
        target = finder(stop)
        assert target is not None
        finder.job_ended(target, Outcome.REJECTED)
        Peer.job_id = "job-2"  # the same key under a new job id
        assert finder(stop) is None
    finally:
        listener.close()


# -- a fake requester -------------------------------------------------------------------------------
class FakeRequester(threading.Thread):
    """Listens where a fake mDNS advert points, speaks admission with its own key and a guess,
    and keeps every byte the volunteer sends."""

    def __init__(self, guess):
        super().__init__(daemon=True)
        self.public, _ = zmq.curve_keypair()
        self.guess = guess
        self.server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.received = b""
        self.messages = []

    def run(self):
        self.server.settimeout(10)
        conn, _ = self.server.accept()
        conn.settimeout(5)
        reader = proto.AdmissionReader()
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                self.received += data
                for frames in reader.feed(data):
                    msg = proto.decode(frames)
                    self.messages.append(msg)
                    if msg.type == "PAKE":
                        self.pake = RequesterPake(self.guess, self.public, z85.encode(msg.parts[0]), msg.parts[1])
                        conn.sendall(proto.pack_admission(proto.encode("PAKE_REPLY", [self.pake.reply])))
                    elif msg.type == "CONFIRM":  # it cannot check the MAC: it claims success
                        conn.sendall(proto.pack_admission(proto.encode("ADMIT", [self.pake.admit_mac(5556)], data_port=5556)))


def test_a_fake_requester_collects_nothing_usable_from_a_volunteer():
    fake = FakeRequester(guess="000000")
    fake.start()
    started = time.monotonic()
    with pytest.raises(AdmissionRefused, match="did not prove"):
        admit(JobTarget(fake.endpoint, fake.public, CODE), zmq.curve_keypair())
    fake.join(5)
    pake, confirm = fake.messages[0], fake.messages[1]
    assert [m.type for m in fake.messages] == ["PAKE", "CONFIRM"]
    # The code is nowhere in what it got, in any common form.
    for form in (CODE.encode(), CODE.encode("utf-16-le"), int(CODE).to_bytes(4, "big"), int(CODE).to_bytes(4, "little")):
        assert form not in fake.received
    # And what it got cannot test a code offline: its reply fixed one guess; with the volunteer's
    # messages, no candidate code (the right one included) reproduces the volunteer's MAC.
    client_key = z85.encode(pake.parts[0])
    candidates = [CODE, "000000", "123456", "424241"]
    assert not any(RequesterPake(c, fake.public, client_key, pake.parts[1]).volunteer_proved(confirm.parts[0]) for c in candidates)
    print(f"fake requester: {len(fake.received)} bytes in {time.monotonic() - started:.2f} s, no code, no offline test")


def test_the_volunteer_and_requester_halves_agree_only_on_the_same_code_and_keys():
    server, _ = zmq.curve_keypair()
    other_server, _ = zmq.curve_keypair()
    client, _ = zmq.curve_keypair()

    def run(volunteer_code, requester_code, requester_key=server):
        volunteer = VolunteerPake(volunteer_code, server, client)
        requester = RequesterPake(requester_code, requester_key, client, volunteer.start())
        return requester.volunteer_proved(volunteer.confirm(requester.reply)), volunteer.requester_proved(requester.admit_mac(7), 7)

    assert run(CODE, CODE) == (True, True)
    assert run(CODE, "424243") == (False, False)
    assert run(CODE, CODE, requester_key=other_server) == (False, False)  # bound to the requester's key


# -- guessing against the real requester ------------------------------------------------------------
@pytest.mark.slow
def test_online_guessing_is_rate_limited_per_job_across_many_source_addresses(demo_material, demo_roster):
    job = RunningJob(demo_material.video, demo_roster, sample_fps=4.0).start()
    endpoint, key = split_connect(job.line)
    port = int(endpoint.rsplit(":", 1)[1])
    counts = {"checked": 0, "refused": 0, "errors": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + 8.0

    def guesser(source):
        n = 0
        while time.monotonic() < deadline:
            n += 1
            keypair = zmq.curve_keypair()
            pake = VolunteerPake(f"{n:06d}", key, keypair[0])
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=3, source_address=(source, 0)) as sock:
                    sock.sendall(proto.pack_admission(proto.encode("PAKE", [z85.decode(keypair[0]), pake.start()])))
                    reader = proto.AdmissionReader()
                    msg = _read(sock, reader)
                    if msg.type == "PAKE_REPLY":
                        sock.sendall(proto.pack_admission(proto.encode("CONFIRM", [pake.confirm(msg.parts[0])])))
                        msg = _read(sock, reader)
                outcome = "refused" if msg.get("retry_after_s") else "checked"
            except (OSError, proto.ProtocolError):
                outcome = "errors"
            with lock:
                counts[outcome] += 1

    sources = [f"127.0.0.{i}" for i in range(2, 10)]
    threads = [threading.Thread(target=guesser, args=(s,)) for s in sources]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    elapsed = time.monotonic() - started
    failed = job.job.requester.admission.failed_attempts
    try:
        # The right code still gets in afterwards (the budget counts failures, per job).
        honest = job.volunteer("honest")
        job.wait(lambda: any(p.name == "honest" for p in job.job.requester.peers.values()), 90, "the honest volunteer")
    finally:
        report = job.finish()
    per_s = failed / elapsed
    sustained = job.job.requester.admission.limiter.guesses_per_s()
    print(f"{len(sources)} addresses, {elapsed:.1f} s: {failed} guesses checked ({per_s:.1f}/s), {counts['refused']} refused; "
          f"sustained {sustained:.3f}/s: 10^6 codes in {10**6 / sustained / 86400:.0f} days")
    assert counts["refused"] > 0
    assert failed <= 20 + elapsed / 30 + 1  # the burst, then one per 30 s, whatever the addresses
    assert 10**6 / sustained > 60 * 86400
    assert honest.wait(60) == 0 and report.job.frames_processed == report.job.frames_total


def _read(sock, reader):
    while True:
        data = sock.recv(2048)
        if not data:
            raise OSError("closed")
        messages = reader.feed(data)
        if messages:
            return proto.decode(messages[0])


# -- memory and descriptors against a requester in its own process -----------------------------------
class RequesterProcess:
    def __init__(self, demo_material, nofile_soft=None):
        def limit():
            if nofile_soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile_soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

        command = [sys.executable, "-m", "p2p_attendance", "run", str(demo_material.video), "--class", "Demo class", "--workers", "0",
                   "--listen", "tcp://127.0.0.1:0", "--join-code", CODE, "--sample-fps", "4", "--no-discovery"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=limit)
        self.line = None
        deadline = time.monotonic() + 60
        while self.line is None and time.monotonic() < deadline:
            text = self.process.stderr.readline()
            if "--connect" in text:
                self.line = text.split("--connect ")[1].split()[0]
        assert self.line, "the requester printed no connect line"
        self.psutil = psutil.Process(self.process.pid)
        time.sleep(1.0)

    def ports(self):
        """Every port it listens on: what a port scan finds."""
        return sorted(c.laddr.port for c in self.psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN)

    def rss_mb(self):
        return self.psutil.memory_info().rss / 1e6

    def close(self):
        self.process.kill()
        self.process.wait(10)


@pytest.mark.slow
def test_big_messages_and_floods_without_the_code_do_not_grow_the_requester(demo_material, demo_roster):
    requester = RequesterProcess(demo_material)
    context = zmq.Context()
    sockets = []
    try:
        endpoint, key = split_connect(requester.line)
        before = requester.rss_mb()
        big_part = b"\x00" * (4 * 1024 * 1024 - 4096)
        flood = b"{" * (64 * 1024)
        for port in requester.ports():
            for n in range(23):  # 3 senders of one huge message, 20 flooders, on every port
                sock = context.socket(zmq.DEALER)
                client_socket_options(sock, key)
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.SNDHWM, 0)
                sock.connect(f"tcp://127.0.0.1:{port}")
                sockets.append(sock)
                # Never block the attacker: where ZAP has already closed the connection, ZeroMQ
                # keeps no pipe and a blocking send would wait forever (nothing reached us: good).
                try:
                    if n < 3:
                        sock.send_multipart([big_part] * 30, zmq.NOBLOCK, copy=False)  # 120 MB in one message
                    else:
                        for _ in range(200):
                            sock.send(flood, zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    pass
            raw = socket.create_connection(("127.0.0.1", port))  # and raw bytes, no protocol at all
            sockets.append(raw)
            raw.setblocking(False)
            sent, until = 0, time.monotonic() + 2
            while sent < 200 * 1024 * 1024 and time.monotonic() < until:
                try:
                    sent += raw.send(big_part)
                except BlockingIOError:
                    time.sleep(0.01)
                except OSError:
                    break  # closed on us: good
        peak = before
        for _ in range(40):
            peak = max(peak, requester.rss_mb())
            time.sleep(0.1)
        print(f"requester RSS {before:.0f} MB before, peak {peak:.0f} MB after the floods on ports {requester.ports()}")
        assert requester.process.poll() is None, "the requester died"
        assert peak - before < 60
    finally:
        for sock in sockets:
            sock.close()
        context.term()
        requester.close()


@pytest.mark.slow
def test_a_thousand_idle_connections_do_not_keep_an_honest_volunteer_out(demo_material, demo_roster):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip(f"the hard limit on open files here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the attacker's side needs its own
    requester = RequesterProcess(demo_material, nofile_soft=1024)  # a desktop's default
    idle = []
    context = zmq.Context()
    try:
        for port in requester.ports():
            for n in range(1050):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(f"127.0.1.{n % 200 + 1}", 0)))
                except OSError:
                    break
        time.sleep(0.5)
        endpoint, key = split_connect(requester.line)
        started = time.monotonic()
        joined_after = None
        while joined_after is None and time.monotonic() - started < 25:
            keypair = zmq.curve_keypair()
            try:
                data_endpoint = admit(JobTarget(endpoint, key, CODE), keypair, timeout_s=3)
            except (OSError, proto.ProtocolError, AdmissionRefused):
                time.sleep(0.2)
                continue
            sock = context.socket(zmq.DEALER)
            client_socket_options(sock, key, keypair)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(data_endpoint)
            sock.send_multipart(proto.encode("HELLO", name="honest", cores=1, app_version="0.1.0"))
            if sock.poll(3000) and proto.decode(sock.recv_multipart()).type == "WELCOME":
                joined_after = time.monotonic() - started
            sock.close()
        print(f"{len(idle)} idle connections; the honest volunteer joined after {joined_after} s")
        assert joined_after is not None and joined_after < 10
    finally:
        for sock in idle:
            sock.close()
        context.term()
        requester.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
