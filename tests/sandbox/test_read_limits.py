"""A file an agent leaves can be larger than the host's memory: reading it from the sandbox (its logs,
its trace, a check, the files API) holds at most the bytes asked for, streamed from the engine."""

from __future__ import annotations

import pytest

from polarity_keystone.sandbox import OUTPUT_LIMIT, DockerBackend, SandboxPlan

pytestmark = pytest.mark.docker

BIG = OUTPUT_LIMIT + 16 * 1024 * 1024


def test_a_file_larger_than_the_limit_is_read_only_as_far_as_asked(
    backend: DockerBackend, base_image: str, run_id: str
) -> None:
    sandbox = backend.create(SandboxPlan(spec_id="read-limits", run_id=run_id, image=base_image))
    try:
        made = sandbox.exec(f"head -c {BIG} /dev/zero | tr '\\0' 'x' > big.log && echo done >> big.log")
        assert made.exit_code == 0, made.stderr
        assert sandbox.read_file("big.log", 1000) == b"x" * 1000
        assert len(sandbox.read_file("big.log")) == OUTPUT_LIMIT  # the default cap, not the whole file
        sandbox.write_file("small.txt", b"all of it\n")
        assert sandbox.read_file("small.txt") == b"all of it\n"
    finally:
        sandbox.destroy()
