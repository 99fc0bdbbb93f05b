"""The app's errors meant for people: their str() is one sentence a teacher or student can act on.

The GUI and the CLI catch ``UserError`` (or one of these classes) and show its text as it is;
any other exception is a bug or a failure of the platform: it gets a generic message, and the
traceback goes to the log. This module imports nothing from the app: every layer may raise these.
Errors that are not for people stay where they are raised (``swarm.protocol.ProtocolError``: a
peer's malformed message; ``swarm.volunteer.AdmissionRefused``: a requester's refusal, whose
reason is the peer's own text and is reworded by ``swarm.sharing.refusal_text``).
"""
from __future__ import annotations


class UserError(Exception):
    """An error whose message is meant for the person using the app."""


class VideoError(UserError):
    """The video cannot be used."""


class RosterError(UserError):
    """A class cannot be found or read."""


class EnrollCancelled(UserError):
    """Enrolling was cancelled before the class was saved: nothing was changed."""


class SampleFacesMissing(UserError, RuntimeError):
    """The demo's sample faces (scikit-image, matplotlib) are not installed."""


class KeyError_(UserError, ValueError):
    """A server key that cannot be used; the message says what was expected."""


class SelfTestFailure(UserError):
    """A step of the self-test failed; the message says why, for whoever runs it."""


# The parts of a job that a checkpoint must match, as CheckpointMismatch.changed names them.
CHECKPOINT_PARTS = ("video_fingerprint", "roster_hash", "params")


class CheckpointMismatch(UserError):
    """The saved progress belongs to a different video, class list or settings.

    ``changed``: which parts differ, in CHECKPOINT_PARTS's order; ``settings``: for each job
    setting that differs (e.g. "tolerance"), its (saved, now) values. The GUI words these itself.
    """

    def __init__(self, changed: tuple[str, ...], settings: dict[str, tuple[object, object]] | None = None):
        self.changed = tuple(changed)
        self.settings = dict(settings or {})
        names = " and ".join(name.replace("_", " ") for name in self.changed)
        super().__init__(f"the saved progress belongs to a different {names}; run without --resume to start afresh")

    def __reduce__(self):  # picklable like any exception (crosses process pools in tests)
        return (type(self), (self.changed, self.settings))
