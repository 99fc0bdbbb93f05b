"""This copy's mDNS advert, started off the caller's thread: the one home for what the CLI, the
GUI and a job each did by hand.

Starting an :class:`~p2p_attendance.discovery.Advertiser` blocks for about 2 s (zeroconf probes the
name), which must not hold up a job, a volunteer or the GUI thread. mDNS failing (blocked multicast,
no interface) must never stop the caller either: volunteers can still use the --connect line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .mdns import _UPDATABLE, Advertiser, _check_fields

log = logging.getLogger(__name__)


class BackgroundAdvertiser:
    """Starts an :class:`Advertiser` on its own thread and looks after it.

    ``update()`` works at once, before the advert is up too: the latest fields are applied as
    soon as it is. ``close()`` withdraws the advert (goodbye packets); an advert that comes up
    after ``close()`` is withdrawn right away. ``on_ready(instance)`` and ``on_error(exc)`` run
    on the advertiser's thread (the GUI passes them on to its own thread with a signal).
    """

    def __init__(
        self,
        name: str | None,
        cores: int,
        interfaces: list[str] | None = None,
        state: str = "idle",
        *,
        on_ready: Callable[[str], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        **fields,
    ) -> None:
        unknown = set(fields) - {"port", "job_id", "server_key", "open_job", "class_name"}
        if unknown:
            raise TypeError(f"unknown advertiser field(s): {', '.join(sorted(unknown))}")
        self._lock = threading.Lock()
        self._advertiser: Advertiser | None = None
        self._closed = False
        self._wanted = {"state": state, "port": None, "job_id": None, "server_key": None, "open_job": False, "class_name": "", **fields}
        self._on_ready = on_ready
        self._on_error = on_error
        self._thread = threading.Thread(
            target=self._start, args=(name, cores, interfaces, dict(self._wanted)), name="mdns-advert", daemon=True
        )
        self._thread.start()

    @property
    def instance(self) -> str | None:
        """The advertised instance name, once the advert is up."""
        advertiser = self._advertiser
        return advertiser.instance if advertiser is not None else None

    def wait_ready(self, timeout: float) -> bool:
        """Whether the advert is up, waiting at most ``timeout`` seconds for it."""
        self._thread.join(max(0.0, timeout))
        return self._advertiser is not None

    def update(self, **changes) -> None:
        """Change what is advertised (fields as :meth:`Advertiser.update`); remembered until
        the advert is up. ``TypeError``/``ValueError`` for unknown fields or bad values."""
        unknown = set(changes) - set(_UPDATABLE)
        if unknown:
            raise TypeError(f"unknown advertiser field(s): {', '.join(sorted(unknown))}")
        with self._lock:
            if self._closed:
                return
            advertiser = self._advertiser
            if advertiser is None:
                wanted = {**self._wanted, **changes}
                _check_fields({"name": "-", "cores": 1, **wanted})
                self._wanted = wanted
                return
            advertiser.update(**changes)
            self._wanted.update(changes)

    def close(self, wait: float = 0.0) -> None:
        """Withdraw the advert. ``wait``: seconds to let a starting advert come up first, so its
        goodbye goes out now; otherwise it is withdrawn from its own thread when it comes up."""
        if wait > 0:
            self._thread.join(wait)
        with self._lock:
            self._closed = True
            advertiser, self._advertiser = self._advertiser, None
        if advertiser is not None:
            advertiser.close()

    def _start(self, name, cores, interfaces, fields) -> None:
        try:
            advertiser = Advertiser(name, cores, interfaces, **fields)
        except Exception as exc:  # noqa: BLE001 - reported to the owner, who carries on without it
            log.debug("cannot advertise over mDNS", exc_info=True)
            _call(self._on_error, exc)
            return
        with self._lock:
            closed = self._closed
            if not closed:
                self._advertiser = advertiser
                # Fields changed while zeroconf was probing the name: announce the latest.
                changed = {k: v for k, v in self._wanted.items() if fields.get(k) != v}
                if changed:
                    try:
                        advertiser.update(**changed)
                    except (TypeError, ValueError):
                        log.debug("advert update refused", exc_info=True)
        if closed:
            advertiser.close()  # the owner finished while the name was being probed
        else:
            _call(self._on_ready, advertiser.instance)


def _call(callback, arg) -> None:  # noqa: ANN001
    """Run an owner's callback; its failure (say, a window already gone) is not ours."""
    if callback is None:
        return
    try:
        callback(arg)
    except Exception:  # noqa: BLE001
        log.debug("advertiser callback failed", exc_info=True)
