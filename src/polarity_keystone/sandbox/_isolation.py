"""Keeps sandboxes away from the host running Docker.

An `--internal` network has no route out, but the host itself still answers on the network's bridge
address (and on every other address it owns): a server on the host listening on 0.0.0.0 is reachable
from the agent. Every sandbox network gets a bridge named `ks-…`, and one iptables rule on the host drops
new connections arriving from any `ks+` interface. The rule is installed through a short-lived container
(host network, NET_ADMIN) from the gateway image, with whichever iptables flavour holds Docker's own
rules; it is idempotent and installed once per process.
"""

from __future__ import annotations

import hashlib
import os
import threading

import docker
import docker.errors

from ._base import SandboxError

BRIDGE_PREFIX = "ks-"
OPT_OUT = "KEYSTONE_ALLOW_HOST_ACCESS"
_RULE = f"INPUT -i {BRIDGE_PREFIX}+ -m conntrack --ctstate NEW,INVALID -j DROP"
_SCRIPT = f"""
for ipt in iptables-nft iptables-legacy; do
  if $ipt -S FORWARD 2>/dev/null | grep -q DOCKER; then
    $ipt -C {_RULE} 2>/dev/null || $ipt -I {_RULE}
    exit $?
  fi
done
echo "no iptables on this host holds Docker's rules" >&2
exit 1
"""

_guarded: set[str] = set()
_lock = threading.Lock()


def bridge_name(sandbox_id: str) -> str:
    """A Linux interface name (15 characters at most) that the host rule matches."""
    return BRIDGE_PREFIX + hashlib.sha256(sandbox_id.encode()).hexdigest()[:12]


def guard_host(client: docker.DockerClient, image: str) -> None:
    """Install the host rule once per engine; raises SandboxError (with the way out) when it cannot."""
    if os.environ.get(OPT_OUT) == "1":
        return
    engine = str(client.info().get("ID", ""))
    with _lock:
        if engine in _guarded:
            return
        try:
            client.containers.run(
                image,
                ["sh", "-c", _SCRIPT],
                network_mode="host",
                cap_add=["NET_ADMIN", "NET_RAW"],
                remove=True,
                stderr=True,
                labels={"keystone.managed": "true"},
            )
        except docker.errors.ContainerError as exc:
            raise SandboxError(_failure(str(exc.stderr or exc))) from exc
        except docker.errors.APIError as exc:
            raise SandboxError(_failure(str(exc.explanation or exc))) from exc
        _guarded.add(engine)


def _failure(reason: str) -> str:
    return (
        f"could not keep sandboxes away from the host (iptables rule on the Docker host): {reason.strip()}; "
        f"fix the engine's permissions, or set {OPT_OUT}=1 to run sandboxes that can reach the host"
    )
