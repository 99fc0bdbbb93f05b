"""CurveZMQ keys and join codes. docs/security.md explains the design and its limits.

The requester has one long-lived key pair (or a fresh one per job, in tests); the public key travels to volunteers in the
mDNS record or in the connection line the requester prints (as 64 hex characters, which survive
any shell and chat program, unlike Z85). A volunteer pins that key: CurveZMQ then proves it talks
to the holder of the secret key, and encrypts everything, the join code included.
"""
from __future__ import annotations

import binascii
import hmac
import secrets
from pathlib import Path

import zmq
from zmq.utils import z85

from p2p_attendance.fileio import private_dir, tighten, write_private_bytes


class KeyError_(ValueError):
    """A server key that cannot be used; the message says what was expected."""


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
    """A short form people can compare by eye (shown next to the join code)."""
    raw = z85.decode(z85_key)
    return "-".join(raw[i : i + 2].hex().upper() for i in range(0, 6, 2))


def split_connect(value: str) -> tuple[str, bytes | None]:
    """'tcp://host:port' or 'tcp://host:port/KEYHEX' -> (endpoint, key or None)."""
    value = value.strip()
    if not value.startswith("tcp://"):
        value = "tcp://" + value
    head, _, tail = value[len("tcp://") :].partition("/")
    endpoint = "tcp://" + head
    return endpoint, (parse_server_key(tail) if tail else None)


def new_join_code(digits: int = 6) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def codes_match(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def server_socket_options(sock: zmq.Socket, public: bytes, secret: bytes) -> None:
    sock.curve_server = True
    sock.curve_publickey = public
    sock.curve_secretkey = secret


def client_socket_options(sock: zmq.Socket, server_key: bytes) -> None:
    public, secret = zmq.curve_keypair()  # the client's key is throwaway: trust is the join code
    sock.curve_serverkey = server_key
    sock.curve_publickey = public
    sock.curve_secretkey = secret
