"""A command killed with -9 at the worst moment: after its message reached the target, before it heard back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from servers import Gateway
from support import ACTOR


def kill_once_received(root: Path, *args: str, gateway: Gateway, to: str) -> None:
    """Run `incident ARGS` in its own process and SIGKILL it as soon as `gateway` has taken in a request for `to`
    (the gateway must be told to hang on it, so the process cannot record the answer first)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "incident", "--workspace", str(root), "--actor", ACTOR, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 60
        while not gateway.received_for(to):
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"incident {' '.join(args)} ended before sending:\n{out.decode()}{err.decode()}")
            assert time.monotonic() < deadline, "the target never received the message"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)  # reap it: a zombie's pid still looks alive to the next run
    assert proc.returncode == -signal.SIGKILL
