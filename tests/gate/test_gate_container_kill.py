"""`docker kill` of a running `ks` in the gate image, on the host's network (so with the host's hostname)
and the engine's socket, leaves nothing on the engine within 10 s: the process's reaper container removes
its sandboxes. The image is the real one, built as tests/gate/test_gate_image.py builds it."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import docker
import pytest

from polarity_keystone.sandbox import DockerBackend
from polarity_keystone.sandbox import _labels as labels
from tests.cli.test_interrupt import BOOT_TIMEOUT_S, GONE_WITHIN_S, left_of_spec, sleeping_spec
from tests.gate.test_gate_image import image  # noqa: F401  (the module-scoped fixture that builds it)
from tests.waiting import wait_until

pytestmark = pytest.mark.docker


def test_docker_kill_of_a_running_ks_container_leaves_nothing_within_10_s(
    image: str,  # noqa: F811
    backend: DockerBackend,
    tmp_path: Path,
) -> None:
    spec_id = f"killed-{uuid.uuid4().hex[:10]}"
    (tmp_path / "spec.yaml").write_text(sleeping_spec(spec_id))
    container = backend.client.containers.run(
        image,
        ["ks", "eval", "run", str(tmp_path / "spec.yaml")],
        detach=True,
        network_mode="host",
        working_dir=str(tmp_path),
        volumes={
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
            str(tmp_path): {"bind": str(tmp_path), "mode": "rw"},
        },
    )
    try:

        def agents_running() -> bool:
            container.reload()
            assert container.status == "running", container.logs().decode(errors="replace")
            selector = {"label": f"{labels.SPEC}={spec_id}"}
            return len(backend.client.containers.list(filters=selector)) >= 2

        wait_until(agents_running, BOOT_TIMEOUT_S, "both replicas' agents running")

        container.kill()

        wait_until(
            lambda: left_of_spec(backend.client, spec_id) == ([], []),
            GONE_WITHIN_S,
            f"no containers or networks of {spec_id}",
        )
    finally:
        container.remove(force=True)
        for name in left_of_spec(backend.client, spec_id)[0]:
            with contextlib.suppress(docker.errors.NotFound):
                backend.client.containers.get(name).remove(force=True)
