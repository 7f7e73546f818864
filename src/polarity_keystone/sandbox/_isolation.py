"""Keeps sandboxes away from the host running Docker.

An `--internal` network has no route out, but the host itself still answers on the network's bridge
address (and on every other address it owns): a server on the host listening on 0.0.0.0 is reachable
from the agent. Every sandbox network gets a bridge named `ks-…`, and one iptables rule on the host drops
new connections arriving from any `ks+` interface (the gateways' shared egress network is one of them,
see `_egress.py`); a second refuses what such an interface sends to link-local addresses (the cloud's
metadata service), which is forwarded rather than delivered to the host. The rules are installed through
a short-lived container (host network, NET_ADMIN) from the gateway image, with whichever iptables
flavour holds Docker's own rules; they are idempotent, and each backend runs the container again now and
then (`HostGuard`). The same container
reports the host's addresses, read from its interfaces (the engine's API does not list them, nor, here,
docker0's address), so each gateway refuses them too: a port another container published on one of them
is forwarded, not delivered to the host, and so escapes the INPUT rule.

Ranges the operator denies sandboxes (`_deny.py`) get a chain of their own, named after the list and
jumped to from DOCKER-USER for `ks+` bridges (`deny_rules`): several servers and nodes on one host each
keep theirs in force (sandboxes are denied the union), one with no list touches none, and a changed list
takes effect at once under its new name (the old chain stays until the host's rules are reset, which
errs on the side of refusing). Traffic between `ks+` bridges (a sandbox and its own services, kept
within one network by Docker's isolation rules) passes on.

One exception: the port of the Keystone server that boots the sandboxes (`HostGuard.open_server_port`),
so an agent can call the server with its sandbox token. It is accepted above the drop rule for that TCP port
alone; every other port of the host stays dropped. It is installed once per port, not per sandbox (a
boot costs no extra container), and removed when the server's process ends, however it ends, by a
container that holds it for the process (`PortKeeper`).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import threading
import time

import docker
import docker.errors

from . import _labels as labels
from ._attachment import Attachment
from ._base import SandboxError
from ._deny import NOTHING_DENIED, DeniedRanges

BRIDGE_PREFIX = "ks-"
OPT_OUT = "KEYSTONE_ALLOW_HOST_ACCESS"
_RULES = (
    f"INPUT -i {BRIDGE_PREFIX}+ -m conntrack --ctstate NEW,INVALID -j DROP",
    # Link-local (the cloud metadata service) for sandboxes with open egress and no gateway, too.
    f"DOCKER-USER -i {BRIDGE_PREFIX}+ -d 169.254.0.0/16 -j REJECT",
)
_ON_HOST_NETWORK = {"network_mode": "host", "cap_add": ["NET_ADMIN", "NET_RAW"]}
"""What a container changing the host's rules runs with (`_on_host`, `PortKeeper`)."""
_ADDRESSES_MARKER = "keystone host addresses:"
_ADDRESSES = r"""
import ipaddress, os, re
with open("/proc/net/fib_trie") as trie:
    found = re.findall(r"\|-- ([0-9.]+)\n\s+/32 host LOCAL", trie.read())
if os.path.exists("/proc/net/if_inet6"):
    with open("/proc/net/if_inet6") as table:
        found += [str(ipaddress.IPv6Address(int(line.split()[0], 16))) for line in table]
print(MARKER, *sorted(set(found)))
""".replace("MARKER", repr(_ADDRESSES_MARKER))


def deny_rules(denied: DeniedRanges) -> tuple[str, str]:
    """(the chain's contents for `iptables-restore --noflush`, which empties it first; the rule jumping
    to it), for the ranges the operator denies sandboxes."""
    listed = ",".join(map(str, denied.denied)) + "|" + ",".join(f"{a}:{p}" for a, p in denied.excepted)
    chain = "KS-DENY-" + hashlib.sha256(listed.encode()).hexdigest()[:12]
    lines = [f":{chain} - [0:0]", f"-A {chain} -o {BRIDGE_PREFIX}+ -j RETURN"]
    lines += [
        f"-A {chain} -d {address}/32 -p tcp --dport {port} -j RETURN" for address, port in denied.excepted
    ]
    lines += [
        f"-A {chain} -d {network} -j REJECT --reject-with icmp-admin-prohibited" for network in denied.denied
    ]
    return "\n".join(["*filter", *lines, "COMMIT", ""]), f"DOCKER-USER -i {BRIDGE_PREFIX}+ -j {chain}"


def _script(rules: tuple[str, ...], then: str, chain: str = "") -> str:
    """Load `chain` (iptables-restore input) and install `rules` (each at the top of its chain, if
    missing) with the iptables flavour holding Docker's rules, then run `then`."""
    install = "\n".join(f"    $ipt -C {rule} 2>/dev/null || $ipt -I {rule} || exit 1" for rule in rules)
    load = f"    printf '%s' {shlex.quote(chain)} | $ipt-restore --noflush || exit 1\n" if chain else ""
    return f"""
for ipt in iptables-nft iptables-legacy; do
  if $ipt -S FORWARD 2>/dev/null | grep -q DOCKER; then
{load}{install}
    {then}
  fi
done
echo "no iptables on this host holds Docker's rules" >&2
exit 1
"""


def server_rule(port: int) -> str:
    """Accepts new connections from sandbox bridges to this TCP port of the host (and nothing else)."""
    return f"INPUT -i {BRIDGE_PREFIX}+ -p tcp --dport {port} -m conntrack --ctstate NEW -j ACCEPT"


def bridge_name(sandbox_id: str) -> str:
    """A Linux interface name (15 characters at most) that the host rule matches."""
    return BRIDGE_PREFIX + hashlib.sha256(sandbox_id.encode()).hexdigest()[:12]


def guard_host(
    client: docker.DockerClient, image: str, denied: DeniedRanges = NOTHING_DENIED
) -> tuple[str, ...]:
    """Install the host rules and those of the `denied` ranges (idempotent) and return the host's
    addresses now (none when the operator opted out of the host rules, which keeps the denied ranges);
    raises SandboxError (with the way out) when it cannot. Callers re-run it from time to time (see
    `HostGuard`), since a host gains addresses while a server runs."""
    chain, jump = deny_rules(denied) if denied else ("", "")
    if os.environ.get(OPT_OUT) == "1":
        if denied:
            _on_host(client, image, _script((jump,), "exit 0", chain))
        return ()
    rules = (*_RULES, jump) if denied else _RULES
    output = _on_host(client, image, _script(rules, f"exec python3 -c {shlex.quote(_ADDRESSES)}", chain))
    lines = _decode(output).splitlines()
    reported = next((line for line in lines if line.startswith(_ADDRESSES_MARKER)), None)
    if reported is None:
        raise SandboxError(_failure(f"the host's addresses could not be read: {_decode(output)}"))
    return tuple(reported.removeprefix(_ADDRESSES_MARKER).split())


class PortKeeper:
    """Removes `server_rule(port)` when this process ends, however it ends: a container on the host's
    network waits on its stdin, attached from here as the reaper's is (`_attachment`); when the attachment
    ends (`release`, the process's exit, or its SIGKILL) it deletes every copy of the rule and goes
    away. Closing the port costs the server's shutdown nothing, and a killed server leaves no rule."""

    def __init__(self, client: docker.DockerClient, image: str, port: int) -> None:
        rule = server_rule(port)
        script = _script((), f"cat >/dev/null; while $ipt -D {rule} 2>/dev/null; do :; done; exit 0")
        try:
            host_config = client.api.create_host_config(**_ON_HOST_NETWORK, auto_remove=True)
            created = client.api.create_container(  # stdin open, not detached: see `_attachment`
                image,
                ["sh", "-c", script],
                stdin_open=True,
                detach=False,
                labels={labels.MANAGED: "true", labels.ROLE: labels.PORT_KEEPER_ROLE},
                host_config=host_config,
            )
            self._attachment = Attachment(client, created["Id"])
        except docker.errors.DockerException as exc:
            raise SandboxError(_failure(f"the keeper of the server's port did not start: {exc}")) from exc

    def release(self) -> None:
        """End the attachment, as the process's exit would: the keeper deletes the rule."""
        self._attachment.release()


def _on_host(client: docker.DockerClient, image: str, script: str) -> object:
    """Run `script` in a short-lived container on the host's network with NET_ADMIN; its output."""
    try:
        return client.containers.run(
            image,
            ["sh", "-c", script],
            **_ON_HOST_NETWORK,
            remove=True,
            labels={labels.MANAGED: "true"},
        )
    except docker.errors.ContainerError as exc:
        raise SandboxError(_failure(str(exc.stderr or exc))) from exc
    except docker.errors.APIError as exc:
        raise SandboxError(_failure(str(exc.explanation or exc))) from exc


class HostGuard:
    """`guard_host` for one backend, run at its first boot and again once its answer is older than
    `ttl_s`: the rules stay in place, and an address the host gained since (a new bridge, a VPN) is
    refused by the gateways of later sandboxes, not only dropped by the kernel."""

    def __init__(self, denied: DeniedRanges = NOTHING_DENIED, ttl_s: float = 60.0) -> None:
        self.denied = denied
        self.ttl_s = ttl_s
        self._addresses: tuple[str, ...] = ()
        self._read_at: float | None = None
        self._keepers: dict[int, PortKeeper] = {}
        """Ports opened to sandboxes (by `open_server_port`) -> what closes them."""
        self._checked: set[int] = set()
        self._lock = threading.Lock()

    def addresses(self, client: docker.DockerClient, image: str) -> tuple[str, ...]:
        with self._lock:
            if self._read_at is None or time.monotonic() - self._read_at > self.ttl_s:
                self._addresses = guard_host(client, image, self.denied)
                self._read_at = time.monotonic()
                self._checked.clear()  # the server ports too: the rules may have been flushed since
            return self._addresses

    def open_server_port(self, client: docker.DockerClient, image: str, port: int) -> None:
        """Let sandboxes connect to `port` of the host (`server_rule`), once per port and after `addresses`
        (so the exception lands above the drop), its keeper started first so no rule is ever left without
        one; nothing to do when the operator opted out of the host rules."""
        with self._lock:
            if port in self._checked or os.environ.get(OPT_OUT) == "1":
                return
            if port not in self._keepers:
                self._keepers[port] = PortKeeper(client, image, port)
            _on_host(client, image, _script((server_rule(port),), "exit 0"))
            self._checked.add(port)

    def close(self) -> None:
        """Close the ports this guard opened to sandboxes (their keepers delete the rules)."""
        with self._lock:
            keepers, self._keepers = self._keepers, {}
            self._checked.clear()
        for keeper in keepers.values():
            keeper.release()


def _decode(output: object) -> str:
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)


def _failure(reason: str) -> str:
    return (
        f"could not keep sandboxes away from the host (iptables rule on the Docker host): {reason.strip()}; "
        f"fix the engine's permissions, or set {OPT_OUT}=1 to run sandboxes that can reach the host"
    )
