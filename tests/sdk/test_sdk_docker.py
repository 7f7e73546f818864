"""The SDK driving real Docker sandboxes through the real server: experiments run and awaited by stream
and by polling (with the at-capacity 503 in between), the sandbox API end to end, and embedded mode."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from polarity_keystone import Keystone, NotFoundError, ServiceUnavailableError
from polarity_keystone.sdk import StreamEvent
from tests.sdk.sdk_servers import keystone_on_socket, spec_yaml

pytestmark = pytest.mark.docker


def test_experiments_run_and_wait_by_stream_and_by_polling_then_compare(tmp_path: Path) -> None:
    with keystone_on_socket(f"sqlite://{tmp_path / 'k.db'}", max_concurrent_experiments=1) as server:
        ks = server.client()
        ks.specs.create(spec_yaml(command="sleep 1; echo a > a.txt", replicas=2))
        first = ks.experiments.create("baseline", "sdk-spec", seed=1)
        second = ks.experiments.create("candidate", "sdk-spec", seed=2)

        ks.experiments.run(first.id)
        with pytest.raises(ServiceUnavailableError) as busy:
            server.client(max_retries=0).experiments.run(second.id)
        assert busy.value.error == "at_capacity" and (busy.value.retry_after or 0) >= 1

        seen: list[StreamEvent] = []
        streamed = ks.experiments.run_and_wait(first.id, timeout=240, on_event=seen.append)
        polled = ks.experiments.run_and_wait(second.id, timeout=240, poll_interval=0.2, stream=False)

        for results in (streamed, polled):
            assert (results.status, results.total_scenarios, results.passed) == ("completed", 1, 1)
            (scenario,) = results.scenarios
            assert [replica.status for replica in scenario.replicas] == ["pass", "pass"]
        kinds = [event.event for event in seen]
        assert kinds.count("replica_done") == 2 and kinds[-1] == "done"

        comparison = ks.experiments.compare(first.id, second.id)
        assert (comparison.baseline_id, comparison.candidate_id, comparison.regressed) == (
            first.id,
            second.id,
            False,
        )
        pass_rate = next(m for m in comparison.metrics if m.name == "pass_rate")
        assert (pass_rate.baseline, pass_rate.candidate, pass_rate.direction) == (1.0, 1.0, "same")
        metrics = ks.experiments.metrics(first.id)
        assert (metrics.summary.total_runs, metrics.summary.pass_rate) == (2, 1.0)


def test_a_sandbox_through_the_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec_yaml())
    monkeypatch.setenv("SDK_TEST_TOKEN", "forwarded-from-the-env")
    with keystone_on_socket(f"sqlite://{tmp_path / 'k.db'}") as server:
        ks = server.client()
        ks.specs.create(spec_file.read_text())
        sandbox = ks.sandboxes.create("sdk-spec", timeout="5m", metadata={"run": "ci-1"}, spec_path=spec_file)
        assert (sandbox.state, sandbox.metadata) == ("ready", {"run": "ci-1"})
        events: list[StreamEvent] = []
        follower = threading.Thread(target=lambda: events.extend(ks.sandboxes.events(sandbox.id)))
        follower.start()

        forwarded = ks.sandboxes.run_command(sandbox.id, 'test "$SDK_TEST_TOKEN" = forwarded-from-the-env')
        assert forwarded.exit_code == 0
        echoed = ks.sandboxes.run_command(sandbox.id, "echo hi; echo oops >&2; exit 3", timeout="30s")
        assert (echoed.stdout, echoed.stderr, echoed.exit_code) == ("hi\n", "oops\n", 3)

        ks.sandboxes.write_file(sandbox.id, "notes/a.txt", "text")
        ks.sandboxes.write_file(sandbox.id, "/workspace/blob.bin", b"\x00\xffbytes")
        assert ks.sandboxes.read_file(sandbox.id, "/workspace/notes/a.txt") == b"text"
        assert ks.sandboxes.read_file(sandbox.id, "blob.bin") == b"\x00\xffbytes"
        assert {"notes/a.txt", "blob.bin"} <= set(ks.sandboxes.state(sandbox.id).files)
        assert {"notes/a.txt", "blob.bin"} <= set(ks.sandboxes.diff(sandbox.id).added)
        ks.sandboxes.delete_file(sandbox.id, "blob.bin")
        with pytest.raises(NotFoundError):
            ks.sandboxes.read_file(sandbox.id, "blob.bin")

        extended = ks.sandboxes.extend_timeout(sandbox.id, "20m")
        assert extended.expires_at and sandbox.expires_at and extended.expires_at > sandbox.expires_at
        assert sandbox.id in [s.id for s in ks.sandboxes.list()]

        ks.sandboxes.destroy(sandbox.id)
        follower.join(30)
        assert not follower.is_alive()
        assert "command" in [e.event for e in events]
        assert events[-1].data["data"]["state"] == "destroyed"
        assert sandbox.id not in [s.id for s in ks.sandboxes.list()]


def test_local_runs_an_experiment_whose_agent_lives_next_to_the_spec(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "agent").mkdir(parents=True)
    (project / "agent" / "agent.sh").write_text("echo a > a.txt\n")
    spec_text = spec_yaml("local-run").replace(
        'agent: {type: cli, command: "echo a > a.txt"}',
        "agent: {type: cli, path: agent, command: sh /opt/agent/agent.sh}",
    )
    with Keystone.local(tmp_path / ".keystone") as ks:
        ks.specs.create(spec_text, source_dir=project)
        experiment = ks.experiments.create("embedded", "local-run")
        results = ks.experiments.run_and_wait(experiment.id, timeout=240)
    assert (results.status, results.passed) == ("completed", 1)
