"""`ks.sandboxes.create(image=..., services=..., seed=...)`: the REST API's sandbox without a spec, through
the SDK, with the status and seed it reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarity_keystone import BadRequestError
from tests.sdk.sdk_servers import keystone_on_socket

pytestmark = pytest.mark.docker


def test_a_sandbox_from_an_image_through_the_sdk(tmp_path: Path) -> None:
    with keystone_on_socket(f"sqlite://{tmp_path / 'k.db'}") as server:
        ks = server.client()
        sandbox = ks.sandboxes.create(image="debian:bookworm-slim", services=["redis"], seed="seed_2a")
        found = ks.sandboxes.run_command(sandbox.id, "getent hosts redis")
        ks.sandboxes.destroy(sandbox.id)
        with pytest.raises(BadRequestError, match="give either"):
            ks.sandboxes.create("some-spec", image="debian:bookworm-slim")

        assert (sandbox.status, sandbox.state, sandbox.spec_id) == ("ready", "ready", "")
        assert (sandbox.seed, list(sandbox.services)) == ("seed_000000000000002a", ["redis"])
        assert found.exit_code == 0, found.stderr
        assert ks.sandboxes.get(sandbox.id).status == "stopped"
