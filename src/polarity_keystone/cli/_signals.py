"""SIGTERM and SIGINT end a `ks` command through its normal clean-up path, also as PID 1.

A container's PID 1 that installs no handler never sees SIGTERM (the kernel drops signals whose action is
the default for init), so `docker stop` and a cancelled CI job (SIGTERM, then SIGKILL) would wait for the
SIGKILL; a shell's background job starts with SIGINT ignored. Both signals raise `Interrupted` in the main
thread instead: `finally` blocks and context managers run (the embedded server stops, sandboxes are
destroyed), and the process's exit ends its reaper's connection, which removes whatever is left.

The clean-up gets `CLEAN_UP_GRACE_S`; past it (a replica thread that will not stop soon), or on a second
signal, the process exits at once: its reaper removes the sandboxes all the same, and CI's SIGKILL comes
only seconds after its SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT)
CLEAN_UP_GRACE_S = 3.0


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived; `exit_code` is the shell's 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


_deadline: threading.Timer | None = None


def _exit_now(exit_code: int) -> None:
    sys.stderr.write("exiting before the clean-up ended; the reaper container removes the sandboxes\n")
    sys.stderr.flush()
    os._exit(exit_code)


def _raise(signum: int, frame: FrameType | None) -> None:
    global _deadline
    interrupted = Interrupted(signum)
    if _deadline is not None:
        _exit_now(interrupted.exit_code)
    _deadline = threading.Timer(CLEAN_UP_GRACE_S, _exit_now, (interrupted.exit_code,))
    _deadline.daemon = True
    _deadline.start()
    raise interrupted


@contextmanager
def interrupted_by_signals() -> Iterator[None]:
    """While the block runs (in the main thread; elsewhere signals cannot be handled), SIGTERM and SIGINT
    raise `Interrupted`; the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _deadline
    previous = {signum: signal.signal(signum, _raise) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if _deadline is not None:  # the clean-up ended in time
            _deadline.cancel()
            _deadline = None
