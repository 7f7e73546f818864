"""A command's output is read as a stream into a bounded buffer: its head and tail are kept, the cut is
said in the text and counted in the result, time stays linear and memory bounded (issue 9, finding 4:
200 MB of agent stdout used to outlast the 120 s agent timeout and grow the process by 200 MB)."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from polarity_keystone.engine import AGENT_OUTPUT_LIMIT, PreparedSpec, RunOptions, run_experiment
from polarity_keystone.sandbox import DockerBackend, DockerSandbox, SandboxPlan
from polarity_keystone.sandbox._output import BoundedOutput, cut_marker

MiB = 1024 * 1024


def test_output_within_the_limit_is_kept_whole() -> None:
    output = BoundedOutput(10)
    for chunk in (b"abc", b"", b"defg", b"hij"):
        output.write(chunk)

    assert (output.text(), output.total, output.dropped) == ("abcdefghij", 10, 0)


def test_longer_output_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    output = BoundedOutput(10)
    for index in range(1000):
        output.write(f"{index:04d}".encode())

    assert output.total == 4000
    assert output.dropped == 3990
    assert output.text() == "00000" + cut_marker(3990) + "80999"  # ...0001 | 0998 0999
    assert "[keystone: 4.0 kB of output cut here]" in output.text()


def test_one_huge_chunk_is_cut_like_many_small_ones() -> None:
    output = BoundedOutput(8)
    output.write(b"HEAD" + b"x" * 5_000_000 + b"TAIL")

    assert output.text() == "HEAD" + cut_marker(5_000_000) + "TAIL"
    assert "4.9 MB" not in output.text() and "5.0 MB" in output.text()


def test_a_character_cut_in_two_becomes_a_replacement_not_an_error() -> None:
    output = BoundedOutput(3)
    output.write("ééé".encode())  # six bytes; the one-byte head ends inside the first character

    assert output.text() == "\ufffd" + cut_marker(3) + "é"


def test_memory_stays_within_the_limit_whatever_is_written() -> None:
    output = BoundedOutput(MiB)
    chunk = b"y" * 65536
    tracemalloc.start()
    try:
        for _ in range(1600):  # 100 MiB
            output.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert output.total == 100 * MiB
    assert peak < 4 * MiB, f"buffering 100 MiB peaked at {peak / MiB:.1f} MiB"


@pytest.fixture(scope="module")
def sandbox(backend: DockerBackend, base_image: str) -> Iterator[DockerSandbox]:
    plan = SandboxPlan(spec_id="exec-output", run_id="test-exec-output", image=base_image, timeout_s=600)
    sandbox = backend.create(plan)
    yield sandbox
    sandbox.destroy()


def _print(megabytes: int) -> str:
    """A command writing `megabytes` MB of 'x' to stdout and a line to stderr."""
    return f"head -c {megabytes}000000 /dev/zero | tr '\\0' x; echo done >&2"


@pytest.mark.docker
def test_200_mb_of_output_ends_in_seconds_with_head_tail_and_the_cut(sandbox: DockerSandbox) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = sandbox.exec(_print(200), timeout=120, output_limit=MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    took = time.monotonic() - started

    assert took < 30, f"200 MB of output took {took:.1f}s"
    assert peak < 16 * MiB, f"reading 200 MB of output peaked at {peak / MiB:.1f} MiB"
    assert (result.exit_code, result.timed_out, result.truncated) == (0, False, True)
    assert (result.stdout_bytes, result.stderr_bytes) == (200_000_000, 5)
    head, marker, tail = result.stdout.partition("\n[keystone: ")
    assert head == "x" * (MiB // 2) and tail.endswith("\n" + "x" * (MiB // 2))
    assert marker and tail.startswith(f"{(200_000_000 - MiB) / 1e6:.1f} MB of output cut here]")
    assert result.stderr == "done\n"


@pytest.mark.docker
def test_keystone_s_own_commands_keep_their_whole_output_up_to_the_default_limit(
    sandbox: DockerSandbox,
) -> None:
    result = sandbox.exec(_print(5))

    assert (result.truncated, result.stdout_bytes, len(result.stdout)) == (False, 5_000_000, 5_000_000)


@pytest.mark.docker
def test_timeouts_and_exit_codes_are_unchanged_by_streaming(sandbox: DockerSandbox) -> None:
    slow = sandbox.exec("echo started; sleep 30", timeout=1, output_limit=MiB)
    failed = sandbox.exec("echo out; echo err >&2; exit 3", output_limit=MiB)

    assert (slow.timed_out, slow.exit_code, slow.stdout) == (True, 124, "started\n")
    assert slow.duration_ms < 10_000
    assert (failed.exit_code, failed.stdout, failed.stderr, failed.truncated) == (3, "out\n", "err\n", False)


@pytest.mark.docker
def test_a_replica_whose_agent_prints_200_mb_ends_in_seconds_keeping_head_and_tail(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend
) -> None:
    spec = f"""
    version: 1
    id: loud-agent
    base: ubuntu:24.04
    task: {{prompt: "talk"}}
    agent:
      type: cli
      command: >-
        echo first; {_print(200)}; echo; echo last
      timeout: 120
    invariants:
      ok: {{check: {{type: command_exit, command: "true"}}}}
    """
    started = time.monotonic()
    results = run_experiment(prepared_from(spec), backend, RunOptions(seed=1))
    took = time.monotonic() - started

    (replica,) = results.scenarios[0].replicas
    assert (replica.status, replica.timed_out) == ("pass", False), replica.error or replica.reasons
    assert took < 60, f"the replica took {took:.1f}s"
    assert replica.agent_output.startswith("first\nxxx") and replica.agent_output.endswith("xxx\nlast\n")
    assert "MB of output cut here]" in replica.agent_output
    assert len(replica.agent_output) <= AGENT_OUTPUT_LIMIT + 100
    assert replica.agent_stderr == "done\n"
