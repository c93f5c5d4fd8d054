"""A total deadline per network call: a socket timeout bounds each read, not a server that trickles a byte at a
time. One watchdog thread per process cuts the connections whose call ran past its deadline."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DEFAULT_DEADLINE = 30.0  # seconds for one whole call (connect, send, the full answer)
_TICK = 0.05


class Call:
    """One armed call: `expired` tells the handler its connection was cut by the deadline, not by the server."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False


class _Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, Call, Callable[[], None]]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, call: Call, cut: Callable[[], None]) -> int:
        with self._lock:
            token = next(self._ids)
            self._armed[token] = (time.monotonic() + call.seconds, call, cut)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dispatch-deadline", daemon=True)
                self._thread.start()
            return token

    def disarm(self, token: int) -> None:
        with self._lock:
            self._armed.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(_TICK)
            now = time.monotonic()
            with self._lock:
                due = [(t, c, cut) for t, (at, c, cut) in self._armed.items() if at <= now]
                for token, _, _ in due:
                    del self._armed[token]
            for _, call, cut in due:
                call.expired = True
                try:
                    cut()
                except Exception:  # the connection may be closing on its own
                    pass


_watchdog = _Watchdog()


def seconds_from(qsd: dict[str, str]) -> float:
    """The URL's deadline=SECONDS (default DEFAULT_DEADLINE); a bad value keeps the default."""
    try:
        value = float(qsd.get("deadline", DEFAULT_DEADLINE))
    except (TypeError, ValueError):
        return DEFAULT_DEADLINE
    return value if 0 < value < 86400 else DEFAULT_DEADLINE


@contextmanager
def deadline(seconds: float, cut: Callable[[], None]) -> Iterator[Call]:
    """Run the block with `cut` called (from the watchdog thread) once `seconds` have passed."""
    call = Call(seconds)
    token = _watchdog.arm(call, cut)
    try:
        yield call
    finally:
        _watchdog.disarm(token)
