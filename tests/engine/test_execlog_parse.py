"""Reading the command log (engine/_execlog.py) without a sandbox: failed execs withdraw their attempt,
spawns are kept, junk lines are skipped, and the spec keys that turn the log on are accepted."""

from __future__ import annotations

import json
from typing import Any

from polarity_keystone.engine._execlog import SHIM_PATH, logged_env, needs_command_log, parse_log
from polarity_keystone.spec import parse_spec, unsupported_features

VALID = """
version: 1
id: parse
base: ubuntu:24.04
task: {prompt: "p"}
agent: {type: cli, command: "true"}
invariants:
  ok: {check: {type: command_exit, command: "true"}}
"""


def started(pid: int, argv: list[str], ts: float, call: str = "execve", ppid: int = 1) -> str:
    record: dict[str, Any] = {"ts": ts, "pid": pid, "ppid": ppid, "call": call, "path": argv[0]}
    return json.dumps({**record, "argv": argv, "cwd": "/workspace"})


def failed(pid: int, ts: float) -> str:
    return json.dumps({"ts": ts, "pid": pid, "failed": 2})


def test_a_path_search_leaves_the_attempt_that_worked() -> None:
    log = [
        started(7, ["ls", "-l"], 1.0),
        failed(7, 1.1),
        started(7, ["ls", "-l"], 1.2),
        failed(7, 1.3),
        started(7, ["ls", "-l"], 1.4),
        started(8, ["no-such"], 2.0),
        failed(8, 2.1),
    ]

    commands = parse_log("\n".join(log))

    assert [(c.argv, c.ts) for c in commands] == [(("ls", "-l"), 1.4)]


def test_a_spawn_is_never_withdrawn_by_its_childs_failed_exec() -> None:
    # posix_spawn is logged by the parent after the child started; the child's own failed exec
    # withdraws only the child's exec record, even when the spawn record is written after it.
    log = [
        started(9, ["sh", "-c", "x"], 3.5),
        failed(9, 3.6),
        started(9, ["sh", "-c", "x"], 3.0, call="posix_spawnp", ppid=5),
    ]

    commands = parse_log("\n".join(log))

    assert [(c.argv, c.call, c.ppid) for c in commands] == [(("sh", "-c", "x"), "posix_spawnp", 5)]


def test_commands_come_in_the_order_they_started_and_junk_is_skipped() -> None:
    log = [
        started(3, ["b"], 5.0),
        "not json",
        '{"ts": 1, "pid": 2, "argv": "a string"}',
        "[1, 2]",
        '{"ts":4.0,"pid":4,"ppid":1,"call":"execve","path":"/bin/tr',  # a torn write
        started(2, ["a"], 4.5),
    ]

    assert [c.line for c in parse_log("\n".join(log))] == ["a", "b"]


def test_the_command_line_joins_the_arguments_with_spaces() -> None:
    (command,) = parse_log(started(1, ["sh", "-c", "ls; rm -rf build"], 1.0))

    assert command.line == "sh -c ls; rm -rf build"


def test_the_agent_environment_loads_the_library_and_keeps_its_own_preload() -> None:
    assert logged_env({"A": "1"}) == {
        "A": "1",
        "LD_PRELOAD": SHIM_PATH,
        "KEYSTONE_EXECLOG": "/keystone/execlog.jsonl",
    }
    assert logged_env({"LD_PRELOAD": "/usr/lib/libx.so"})["LD_PRELOAD"] == f"{SHIM_PATH}:/usr/lib/libx.so"


def test_the_spec_keys_are_supported_and_turn_the_log_on() -> None:
    audited = parse_spec(VALID + "audit: {commands: true}\n").spec
    forbidding = parse_spec(VALID + "forbidden: {commands: ['rm -rf']}\n").spec
    plain = parse_spec(VALID + "audit: {commands: false}\n").spec

    assert unsupported_features(audited) == unsupported_features(forbidding) == []
    assert needs_command_log(audited)
    assert needs_command_log(forbidding)
    assert not needs_command_log(plain)
