"""`ks serve` as its own process, as an operator runs it: on a port of 127.0.0.1, its output in a file
(a pipe nobody reads while it serves would fill and stall it), started once it answers /health."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.waiting import answers_health, wait_until

UNBUFFERED = {**os.environ, "PYTHONUNBUFFERED": "1"}
"""So the output file is current while the server runs, not only once it stops."""


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    url: str
    output: Path
    """stdout and stderr together."""

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> int:
        """Ctrl-C, as an operator stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(30)


def start_ks_serve(
    store_url: str,
    workdir: Path,
    *options: str,
    port: int | None = None,
    timeout: float = 30,
    wrapper: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ServeProcess:
    """`ks serve --store STORE_URL OPTIONS...` in `workdir`, on `port` or a free one, answering /health;
    run by `wrapper` (a command that ends by executing its arguments), with `env` added."""
    port = port or free_port()
    command = [sys.executable, "-m", "polarity_keystone", "serve", "--store", store_url, "--port", str(port)]
    with tempfile.NamedTemporaryFile(dir=workdir, prefix="ks-serve-", suffix=".log", delete=False) as sink:
        process = subprocess.Popen(
            [*wrapper, *command, *options],
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**UNBUFFERED, **(env or {})},
        )
    served = ServeProcess(process, f"http://127.0.0.1:{port}", Path(sink.name))
    try:
        wait_until(lambda: answers_health(served.url) or process.poll() is not None, timeout, "ks serve up")
    except AssertionError:
        process.kill()
        raise
    assert process.poll() is None, f"ks serve exited at start-up:\n{served.log()}"
    return served
