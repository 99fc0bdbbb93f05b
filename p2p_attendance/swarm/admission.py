"""The admission door: the requester's advertised port, where a volunteer proves it knows the join
code (SPAKE2, swarm/security.py) before its CurveZMQ key may reach the data socket.

Raw bytes over a ZMQ_STREAM socket under a high-water mark, so nobody can make it buffer more than
a few kilobytes before knowing the code; connections are bounded in number and time, and wrong
guesses spend the job's attempt budget. The requester owns the door and calls it from its loop:
the door's socket has one owner thread, the requester's.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import zmq
from zmq.utils import z85

from p2p_attendance import PROTOCOL_VERSION, __version__
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.protocol import ProtocolError
from p2p_attendance.swarm.security import AttemptLimiter, RequesterPake

if TYPE_CHECKING:
    from p2p_attendance.swarm.requester import JobSpec

log = logging.getLogger(__name__)

ADMISSION_TIMEOUT_S = 5.0  # an admission connection must finish its exchange within this
MAX_ADMISSION_CONNECTIONS = 256  # beyond this, the oldest unfinished one is closed
MAX_ADMITTED_KEYS = 4096  # client keys let onto the data socket (the oldest are forgotten)


@dataclass
class _Admitting:
    """One connection to the admission port, until it is admitted or closed."""

    opened: float
    reader: proto.AdmissionReader = field(default_factory=proto.AdmissionReader)
    pake: RequesterPake | None = None
    holds_token: bool = False
    answered: bool = False  # its last answer is sent: it closes, or we close it at the timeout


class Admission:
    """The STREAM socket of the admission port and the keys it admitted (for the data socket's ZAP).

    The class's budget of wrong join codes outlives the job (roster/join_codes.py): it starts from
    attempt_budget, and each spent guess hands the new state to on_attempt_budget (which must not
    block: the requester's loop answers everyone)."""

    def __init__(self, context: zmq.Context, spec: JobSpec, server_key: bytes, on_event: Callable[[str, object], None],
                 on_attempt_budget: Callable[[dict], None], attempt_budget: dict | None = None):
        self.spec = spec
        self.server_key = server_key
        self.on_event = on_event
        self.on_attempt_budget = on_attempt_budget
        self.socket = context.socket(zmq.STREAM)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, 64)
        self.data_port = 0  # told to an admitted volunteer; the requester sets it once the data socket is bound
        self._admitting: dict[bytes, _Admitting] = {}
        self._admitted: dict[bytes, None] = {}  # client keys (z85) allowed on the data socket, oldest first
        self.limiter = AttemptLimiter(now=time.monotonic())
        if attempt_budget:
            self.limiter.restore(attempt_budget, time.monotonic(), time.time())
        self.failed_attempts = 0

    def admits(self, client_key: bytes) -> bool:
        """Whether this CurveZMQ client key (z85) completed the join-code exchange for this job."""
        return client_key in self._admitted

    def serve(self) -> None:
        for _ in range(100):
            try:
                connection, data = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:  # not [id, data]: cannot happen on a STREAM socket
                continue
            now = time.monotonic()
            state = self._admitting.get(connection)
            if not data:  # connected, or gone (ZMQ_STREAM_NOTIFY)
                if state is None:
                    self._open(connection, now)
                else:
                    self._end(connection, now, close=False)
                continue
            if state is None:
                continue  # closed by us already
            try:
                for frames in state.reader.feed(data):
                    self._on_message(connection, state, frames, now)
                    if connection not in self._admitting:
                        break
            except ProtocolError as exc:
                log.info("admission connection closed: %s", exc)
                self._end(connection, now)
            except Exception:  # a safety net: no stranger's bytes may end the job
                log.exception("unexpected error during admission; connection closed")
                self._end(connection, now)

    def expire(self, now: float) -> None:
        for connection in [c for c, state in self._admitting.items() if now - state.opened > ADMISSION_TIMEOUT_S]:
            self._end(connection, now)

    def close(self) -> None:
        self.socket.close(linger=0)

    def _open(self, connection: bytes, now: float) -> None:
        if len(self._admitting) >= MAX_ADMISSION_CONNECTIONS:
            self._end(next(iter(self._admitting)), now)  # the oldest waits longest
        self._admitting[connection] = _Admitting(now)

    def _on_message(self, connection: bytes, state: _Admitting, frames: list[bytes], now: float) -> None:
        try:
            msg = proto.decode(frames)
        except ProtocolError:
            if proto.peek_type(frames[0]) == "PAKE":
                self._reply(connection, "REJECT", reason=f"incompatible app: this requester runs {__version__} (protocol {PROTOCOL_VERSION})")
            raise
        if state.answered:
            raise ProtocolError(f"{msg.type} after the answer")
        if msg.type == "PAKE" and state.pake is None:
            wait_s = self.limiter.start(now)
            if wait_s:
                self._reply(connection, "REJECT", reason="too many join attempts on this job; try again later", retry_after_s=round(min(wait_s, 3600.0), 1))
                state.answered = True
                return
            state.holds_token = True
            code = "" if self.spec.open_job else self.spec.join_code
            state.pake = RequesterPake(code, self.server_key, z85.encode(msg.parts[0]), msg.parts[1])
            self._reply(connection, "PAKE_REPLY", [state.pake.reply])
        elif msg.type == "CONFIRM" and state.pake is not None:
            proved = state.pake.volunteer_proved(msg.parts[0])
            state.holds_token = False
            self.limiter.finish(now, failed=not proved)
            if not proved:
                self.failed_attempts += 1
                log.warning("a wrong join code was tried (attempt %d)", self.failed_attempts)
                self.on_event("warning", "a computer tried a wrong join code")
                self.on_attempt_budget(self.limiter.state(now, time.time()))
                self._reply(connection, "REJECT", reason="wrong join code")
            else:
                self._admitted[state.pake.client_key] = None
                while len(self._admitted) > MAX_ADMITTED_KEYS:
                    del self._admitted[next(iter(self._admitted))]
                self._reply(connection, "ADMIT", [state.pake.admit_mac(self.data_port)], data_port=self.data_port)
            state.answered = True  # the volunteer closes when it has read the answer
        else:
            raise ProtocolError(f"unexpected {msg.type} during admission")

    def _reply(self, connection: bytes, msg_type: str, parts=None, **fields) -> None:
        try:
            self.socket.send_multipart([connection, proto.pack_admission(proto.encode(msg_type, parts, **fields))], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def _end(self, connection: bytes, now: float, close: bool = True) -> None:
        state = self._admitting.pop(connection, None)
        if state is not None and state.holds_token:
            self.limiter.finish(now, failed=False)  # abandoned before proving anything: it learned nothing
        if close:
            try:
                self.socket.send_multipart([connection, b""], zmq.NOBLOCK)  # closes the connection
            except zmq.ZMQError:
                pass
