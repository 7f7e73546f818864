"""The server's directories reach the nodes that lack them (every test of this package runs its server
with files of its own, which the nodes cannot see; see `serve_on`): a node makes a directory it does not
see from what the server sent, keeps one it sees (a shared volume) as it is, and replaces a copy of its
own when the directory changed; one too large to send is refused saying what to do."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from polarity_keystone import Keystone
from polarity_keystone.cluster._files import PACK_LIMIT_BYTES, NodeFiles, PackedDirectory
from polarity_keystone.sandbox import SandboxError, tar_directory
from tests.cluster.conftest import RayServer
from tests.cluster.nodes import RayNodes
from tests.examples.shipped_examples import EXAMPLES

pytestmark = pytest.mark.docker


@pytest.fixture
def driver(ray_nodes: RayNodes) -> Iterator[None]:
    ray.init(address=ray_nodes.cluster.address, namespace="keystone-tests", log_to_driver=False)
    yield
    ray.shutdown()


def ensure(files: NodeFiles, *directories: PackedDirectory) -> None:
    with files.held(directories):
        pass


def packed(source: Path, at: Path) -> PackedDirectory:
    """`source` as the server sends it, for a replica that reads it at `at`."""
    tar = tar_directory(str(source))
    return PackedDirectory(str(at), hashlib.sha256(tar).hexdigest(), len(tar), ray.put(tar))


def test_a_node_makes_what_it_lacks_keeps_what_it_sees_and_replaces_a_changed_copy(
    driver: None, tmp_path: Path
) -> None:
    source = tmp_path / "server" / "agent"
    (source / "lib").mkdir(parents=True)
    (source / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (source / "run.sh").chmod(0o755)
    (source / "lib" / "data.txt").write_text("one")
    (source / "link").symlink_to("lib/data.txt")
    on_node = tmp_path / "node" / "agent"
    files = NodeFiles(tmp_path / "registry")

    ensure(files, packed(source, on_node))

    assert (on_node / "lib" / "data.txt").read_text() == "one"
    assert stat.S_IMODE((on_node / "run.sh").stat().st_mode) == 0o755
    assert os.readlink(on_node / "link") == "lib/data.txt"

    (source / "lib" / "data.txt").write_text("two")
    ensure(files, packed(source, on_node))
    assert (on_node / "lib" / "data.txt").read_text() == "two"
    assert [p.name for p in on_node.parent.iterdir() if p.name.startswith(".agent.") and p.is_dir()] == []

    shared = tmp_path / "shared" / "agent"
    shared.mkdir(parents=True)
    (shared / "mine.txt").write_text("the volume's")
    ensure(files, packed(source, shared))
    assert [p.name for p in shared.iterdir()] == ["mine.txt"]

    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(SandboxError, match=r"cannot make .*/a-file/agent on this node \(.*\): let the node"):
        ensure(files, packed(source, tmp_path / "a-file" / "agent"))


def test_a_directory_too_large_to_send_and_missing_on_the_node_is_refused_saying_what_to_do(
    tmp_path: Path,
) -> None:
    missing = PackedDirectory(str(tmp_path / "nowhere" / "spec"), "", PACK_LIMIT_BYTES + 1, None)

    with pytest.raises(SandboxError, match=r"is not on this node.*mount it on the nodes at the same path"):
        ensure(NodeFiles(tmp_path / "registry"), missing)


def test_a_replica_runs_on_a_node_from_the_spec_directory_the_server_sent(
    ray_server: RayServer, ray_nodes: RayNodes
) -> None:
    """The server's data directory is a tmpfs only the server sees: from here, as from the nodes, it is
    empty but for what the nodes made there, each copy marked with the digest it was made from."""
    spec = EXAMPLES / "hello-world" / "hello.yaml"
    with Keystone(api_key=ray_server.api_key, base_url=ray_server.serve.url) as ks:
        uploaded = ks.specs.create(path=spec)
        experiment = ks.experiments.create(spec.stem, uploaded.id, replicas=1, seed=1)
        result = ks.experiments.run_and_wait(experiment.id, timeout=600)
    seen_from_here = ray_server.serve.output.parent / "server-files" / "data"
    copies = sorted(seen_from_here.rglob(".*.keystone-copy"))

    (replica,) = result.scenarios[0].replicas
    assert replica.node in ray_nodes.workers
    assert replica.status == "pass", replica.error or replica.reasons
    assert copies, f"no node made a directory under {seen_from_here}"
    for marker in copies:
        made = marker.parent / marker.name.removeprefix(".").removesuffix(".keystone-copy")
        assert made.is_dir() and len(marker.read_text()) == 64
