"""CurveZMQ keys, join codes and admission. docs/security.md explains the design and its limits.

The requester has one long-lived key pair (or a fresh one per job, in tests); the public key travels to volunteers in the
mDNS record or in the connection line the requester prints (as 64 hex characters, which survive
any shell and chat program, unlike Z85). A volunteer pins that key: CurveZMQ then proves it talks
to the holder of the secret key, and encrypts everything.

The join code never travels. A volunteer proves it knows the code with SPAKE2 (the `spake2`
package, as magic-wormhole uses it), with both CurveZMQ public keys in the identities, then key
confirmation both ways: a fake requester gets one guess per student's attempt and nothing to test
guesses against offline; a fake volunteer gets one online guess per attempt, and the requester
counts failed attempts per class, across its lectures (AttemptLimiter, saved by roster/join_codes.py). A volunteer that completes the exchange is
admitted by its CurveZMQ client key on the requester's data socket.
"""
from __future__ import annotations

import binascii
import hashlib
import hmac
import math
import secrets
from pathlib import Path

import zmq
from spake2 import SPAKE2_A, SPAKE2_B
from spake2.ed25519_basic import NotOnCurve
from spake2.spake2 import SPAKEError
from zmq.utils import z85

from p2p_attendance.errors import KeyError_
from p2p_attendance.fileio import private_dir, tighten, write_private_bytes

_BAD_PAKE_MESSAGE = (SPAKEError, NotOnCurve, ValueError, TypeError)  # what spake2 raises on a bad element


def new_keypair() -> tuple[bytes, bytes]:
    """(public, secret), both Z85."""
    if not zmq.has("curve"):
        raise RuntimeError("this pyzmq/libzmq build has no CurveZMQ support; traffic cannot be encrypted")
    return zmq.curve_keypair()


def load_or_create_identity(folder: Path) -> tuple[bytes, bytes]:
    """The requester's long-lived key pair (public, secret), kept in the user data dir.

    A stable key lets lab volunteers started with --connect serve one lesson after another, and
    lets a student check the key fingerprint once. The secret file is readable by its owner only.
    """
    public_path, secret_path = folder / "requester.key", folder / "requester.key_secret"
    try:
        public, secret = public_path.read_bytes().strip(), secret_path.read_bytes().strip()
        if len(public) == 40 and len(secret) == 40:
            private_dir(folder)
            tighten(secret_path)  # made readable to others by an older version or by hand
            tighten(public_path)
            return public, secret
    except OSError:
        pass
    public, secret = new_keypair()
    private_dir(folder)
    # A new file moved into place: writing over an existing file would keep that file's mode.
    write_private_bytes(secret_path, secret)
    write_private_bytes(public_path, public)
    return public, secret


def key_to_hex(z85_key: bytes) -> str:
    """A Z85 CurveZMQ key as the 64 hex characters people are shown and type."""
    return z85.decode(z85_key).hex()


def parse_server_key(text: str) -> bytes:
    """Accept a key as 64 hex characters or 40 Z85 characters; return Z85 bytes."""
    text = text.strip()
    try:
        if len(text) == 64:
            return z85.encode(binascii.unhexlify(text))
        if len(text) == 40:
            raw = z85.decode(text.encode("ascii"))
            if len(raw) == 32:
                return text.encode("ascii")
    except (ValueError, binascii.Error, UnicodeEncodeError):
        pass
    raise KeyError_("the server key must be the 64 hex characters the requester printed")


def key_fingerprint(z85_key: bytes) -> str:
    """A short form of the requester's key that people compare by eye: the teacher's Take screen
    and `run` show it, a student's Share screen and `volunteer` show the key they are about to
    trust. 64 bits of the key's SHA-256, so nobody can make a key with the same fingerprint."""
    digest = hashlib.sha256(z85.decode(z85_key)).digest()
    return "-".join(digest[i : i + 2].hex().upper() for i in range(0, 8, 2))


def split_connect(value: str) -> tuple[str, bytes | None]:
    """'tcp://host:port' or 'tcp://host:port/KEYHEX' -> (endpoint, key or None)."""
    value = value.strip()
    if not value.startswith("tcp://"):
        value = "tcp://" + value
    head, _, tail = value[len("tcp://") :].partition("/")
    endpoint = "tcp://" + head
    return endpoint, (parse_server_key(tail) if tail else None)


# -- the join code as a password-authenticated key exchange --------------------------------------
def _pake_ids(server_key: bytes, client_key: bytes) -> dict:
    """SPAKE2 identities: both CurveZMQ public keys, so an exchange with one requester (or for
    one volunteer's key) is worth nothing with another."""
    return {"idA": b"p2p-attendance volunteer " + z85.decode(client_key), "idB": b"p2p-attendance requester " + z85.decode(server_key)}


def _confirmation(key: bytes, side: bytes, server_key: bytes, client_key: bytes, data_port: int = 0) -> bytes:
    text = b"|".join((b"p2p-attendance confirm", side, z85.decode(server_key), z85.decode(client_key), str(data_port).encode()))
    return hmac.new(key, text, hashlib.sha256).digest()


class VolunteerPake:
    """The volunteer's side: start() -> PAKE message; confirm(reply) -> its MAC; then
    requester_proved(mac, data_port) says whether the requester knew the code too."""

    def __init__(self, code: str, server_key: bytes, client_key: bytes):
        self.server_key, self.client_key = server_key, client_key
        self._spake = SPAKE2_A(code.strip().encode(), **_pake_ids(server_key, client_key))
        self._key = b""

    def start(self) -> bytes:
        return self._spake.start()

    def confirm(self, reply: bytes) -> bytes:
        try:
            self._key = self._spake.finish(reply)
        except _BAD_PAKE_MESSAGE:
            self._key = secrets.token_bytes(32)  # a broken reply: our MAC proves nothing then
        return _confirmation(self._key, b"volunteer", self.server_key, self.client_key)

    def requester_proved(self, mac: bytes, data_port: int) -> bool:
        return bool(self._key) and hmac.compare_digest(mac, _confirmation(self._key, b"requester", self.server_key, self.client_key, data_port))


class RequesterPake:
    """The requester's side for one volunteer's attempt: reply() -> PAKE_REPLY; then
    volunteer_proved(mac) and, only when it did, admit_mac(data_port)."""

    def __init__(self, code: str, server_key: bytes, client_key: bytes, message: bytes):
        self.server_key, self.client_key = server_key, client_key
        spake = SPAKE2_B(code.encode(), **_pake_ids(server_key, client_key))
        self.reply = spake.start()
        try:
            self._key = spake.finish(message)
        except _BAD_PAKE_MESSAGE:
            self._key = secrets.token_bytes(32)  # not a point: it fails confirmation like a wrong code

    def volunteer_proved(self, mac: bytes) -> bool:
        return hmac.compare_digest(mac, _confirmation(self._key, b"volunteer", self.server_key, self.client_key))

    def admit_mac(self, data_port: int) -> bytes:
        return _confirmation(self._key, b"requester", self.server_key, self.client_key, data_port)


class AttemptLimiter:
    """How many join attempts a job answers: a token bucket of failed attempts, global to the job
    (per address would not help: a LAN offers thousands of addresses).

    An attempt holds a token from its start; a correct code gives it back, a wrong one spends it,
    an abandoned one (no answer within the timeout) gives it back (it learned nothing). With
    `burst` 20 and one token per `refill_s` 30 s, a guesser covers 10^6 codes in about a year,
    while a student who mistypes is answered at once (or, after an attack, within 30 s).
    Pure: the clock is passed in."""

    def __init__(self, burst: int = 20, refill_s: float = 30.0, now: float = 0.0):
        self.burst, self.refill_s = burst, refill_s
        self.tokens, self.updated, self.held = float(burst), now, 0

    def _refill(self, now: float) -> None:
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.updated) / self.refill_s)
        self.updated = max(self.updated, now)

    def start(self, now: float) -> float:
        """0 and a token held when an attempt may start; otherwise how many seconds to wait."""
        self._refill(now)
        if self.tokens - self.held >= 1:
            self.held += 1
            return 0.0
        if self.tokens >= 1:
            return 1.0  # attempts in flight hold the rest (a class joining at once): they end in seconds
        return max(1.0, (1 - self.tokens) * self.refill_s)

    def finish(self, now: float, failed: bool) -> None:
        """The attempt that held a token ended: a wrong code spends it."""
        self._refill(now)
        self.held = max(0, self.held - 1)
        if failed:
            self.tokens -= 1

    def guesses_per_s(self) -> float:
        return 1.0 / self.refill_s

    # The budget outlives a job (a class keeps its code lecture after lecture, roster/join_codes.py):
    # saved against the wall clock, since the monotonic one restarts with the computer.
    def state(self, now: float, wall: float) -> dict:
        """What is left of the budget at `now` (monotonic), stamped with the wall-clock time."""
        self._refill(now)
        return {"tokens": round(self.tokens, 3), "at": round(wall, 3)}

    def restore(self, state: dict, now: float, wall: float) -> None:
        """Continue from state(): time since then refills it; a damaged or future-dated state
        refills nothing (a clock set back must not hand out guesses)."""
        try:
            tokens, at = float(state["tokens"]), float(state["at"])
        except (KeyError, TypeError, ValueError):
            return
        if not (math.isfinite(tokens) and math.isfinite(at)):
            return
        elapsed = max(0.0, wall - at)
        self.tokens = min(float(self.burst), max(0.0, tokens) + elapsed / self.refill_s)
        self.updated = now


def raise_open_file_limit() -> int:
    """Lift this process's soft limit on open files to the hard limit: each connection is a
    file descriptor, and desktops default to 1,024 (1,050 idle connections used to lock the
    requester's door). Returns the limit now in force."""
    try:
        import resource
    except ImportError:  # Windows: no such limit for sockets
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft


def heartbeat_options(sock: zmq.Socket) -> None:
    """ZMTP heartbeats: a connection whose other end went silent (cable pulled, laptop shut,
    an attacker's half-open socket) is closed within seconds instead of holding a descriptor."""
    sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
    sock.setsockopt(zmq.HEARTBEAT_TTL, 6000)
    sock.setsockopt(zmq.HANDSHAKE_IVL, 5000)  # a connection that never finishes its handshake


def server_socket_options(sock: zmq.Socket, public: bytes, secret: bytes) -> None:
    """Make `sock` a CurveZMQ server with this key pair (Z85)."""
    sock.curve_server = True
    sock.curve_publickey = public
    sock.curve_secretkey = secret


def client_socket_options(sock: zmq.Socket, server_key: bytes, keypair: tuple[bytes, bytes] | None = None) -> None:
    """`keypair`: the client key that completed admission (a fresh throwaway one by default)."""
    public, secret = keypair or zmq.curve_keypair()
    sock.curve_serverkey = server_key
    sock.curve_publickey = public
    sock.curve_secretkey = secret
