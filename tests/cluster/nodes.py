"""Worker nodes on this machine for the ray executor's tests and bench: each a Ray node with a Docker
engine of its own (a second `dockerd`, with its own socket, data root, exec root, bridge and address
pool). The nodes start with no images: they load what they need from this machine's main engine (their
KEYSTONE_IMAGE_SOURCE), as a node loads them from the server's engine in a deployment."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from ray.cluster_utils import Cluster

from polarity_keystone.sandbox import _labels as labels
from tests.waiting import wait_until

SLOTS = 4
"""Sandbox slots (`keystone_sandbox`) each worker node offers."""


@dataclass
class NodeEngine:
    """A Docker engine of its own for one worker node."""

    name: str
    root: Path
    process: subprocess.Popen[bytes]
    bridge: str

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=120)

    def sandbox_containers(self) -> list[str]:
        """Names of Keystone's sandbox containers on this engine (reapers and port keepers not counted)."""
        with contextlib.closing(self.client()) as client:
            found = client.containers.list(all=True, filters={"label": labels.MANAGED}, ignore_removed=True)
            return [c.name for c in found if c.labels.get(labels.ROLE) not in labels.PROCESS_ROLES]

    def stop(self) -> None:
        """Stop the engine and leave the host as it was: bridges, firewall rules, mounts, files gone."""
        with contextlib.suppress(docker.errors.DockerException), contextlib.closing(self.client()) as client:
            client.networks.prune()  # its egress network's bridge would outlive dockerd
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        subprocess.run(["ip", "link", "del", self.bridge], check=False)
        _drop_rules(self.bridge)
        for mount in _mounts_under(self.root):  # dockerd leaves exec/netns/default mounted
            subprocess.run(["umount", mount], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    """The mount points below `root`, deepest first."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return sorted((point for point in points if point.startswith(f"{root}/")), reverse=True)


def _drop_rules(mentioning: str) -> None:
    """Delete the firewall rules a stopped dockerd left for its bridge (dockerd keeps them at exit)."""
    for table in ("filter", "nat"):
        saved = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True, check=True)
        for line in saved.stdout.splitlines():
            if line.startswith("-A ") and mentioning in line:
                subprocess.run(["iptables", "-t", table, "-D", *shlex.split(line[3:])], check=False)


def start_engine(name: str, bridge_address: str, pool: str, *options: str) -> NodeEngine:
    """A dockerd for node `name`: its default bridge is one of its own at `bridge_address` (never
    `--bridge none`, with which dockerd deletes the main engine's docker0), its networks from `pool`;
    `options` are more of dockerd's (another --host, TLS)."""
    root = Path(tempfile.mkdtemp(prefix=f"ks-{name}-", dir="/tmp"))  # short: a socket path has 108 bytes
    bridge = f"ks-{name}"
    subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)  # a crashed run's
    subprocess.run(["ip", "link", "add", "name", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", bridge_address, "dev", bridge], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    config = root / "daemon.json"
    config.write_text(json.dumps({}))
    command = [
        "dockerd",
        "--host",
        f"unix://{root / 'docker.sock'}",
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "docker.pid"),
        "--config-file",
        str(config),
        "--bridge",
        bridge,
        "--default-address-pool",
        f"base={pool},size=24",
        *options,
    ]
    with (root / "dockerd.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    engine = NodeEngine(name, root, process, bridge)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"dockerd of {name} exited:\n{(root / 'dockerd.log').read_text()[-3000:]}")
        # Docker's client leaks its socket when the engine is not up yet: ask the socket first.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(engine.socket))
            except OSError:
                return False
        with contextlib.closing(engine.client()) as client:
            return bool(client.ping())

    try:
        wait_until(answers, 60, f"the Docker engine of {name}", interval=0.2)
    except BaseException:
        engine.stop()
        raise
    return engine


def node_environment(engine: NodeEngine) -> dict[str, str]:
    """What a worker node of `engine` runs with: its engine, the socket its reapers mount, and where it
    loads images from (this machine's main engine)."""
    main = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return {
        "DOCKER_HOST": engine.url,
        "KEYSTONE_ENGINE_SOCKET": str(engine.socket),
        "KEYSTONE_IMAGE_SOURCE": main,
    }


@dataclass
class RayNodes:
    cluster: Cluster
    engines: list[NodeEngine]
    workers: dict[str, Any]
    """Ray node id -> the node (what `Cluster.remove_node` takes)."""
    engine_of: dict[str, NodeEngine]
    """Ray node id -> its Docker engine."""

    def add_worker(self, engine: NodeEngine, slots: int = SLOTS) -> str:
        """A worker node offering `slots` sandboxes on `engine`; its Ray node id."""
        # Ray keeps as many idle task workers on a node as it has CPUs: as many as its slots, so a
        # replica's task does not wait for a Python worker to start.
        node = self.cluster.add_node(
            num_cpus=slots, resources={"keystone_sandbox": slots}, env_vars=node_environment(engine)
        )
        self.workers[node.node_id] = node
        self.engine_of[node.node_id] = engine
        return str(node.node_id)

    def kill(self, node_id: str) -> None:
        """The node is lost: its processes are killed, as when its machine goes away (its engine stays)."""
        self.cluster.remove_node(self.workers.pop(node_id), allow_graceful=False)


def start_engines(count: int) -> list[NodeEngine]:
    """`count` engines (at most 9), node1, node2, ...; each stopped by its `stop`."""
    engines: list[NodeEngine] = []
    try:
        for n in range(1, count + 1):
            engines.append(start_engine(f"node{n}", f"10.241.{n}.1/24", f"10.{230 + n}.0.0/16"))
    except BaseException:
        for engine in engines:
            engine.stop()
        raise
    return engines


def start_cluster() -> Cluster:
    """A head that offers no sandbox slot; lost nodes are noticed within seconds, not half a minute."""
    system = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
    return Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"keystone_sandbox": 0}, "_system_config": system},
    )
