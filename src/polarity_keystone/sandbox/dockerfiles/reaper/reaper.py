"""Keystone's reaper: removes one engine process's sandboxes once that process is gone.

The owning process attaches to this container's stdin (through the Docker engine, so it works wherever the
engine is reachable: a host, a container with the engine's socket, docker-in-docker) and never writes to
it. The engine closes the stdin when that one connection ends: the process exited, was killed (SIGKILL,
`docker kill` of its container) or lost the engine. Then every container, network and volume labelled with
the owner's `keystone.owner` (except kept sandboxes, `keystone.keep=true`, and reapers) is removed through
the engine's socket, and this container exits (it is started with auto-remove).

It reads nothing but the owner id from its environment; the standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import urllib.parse

SOCKET = "/var/run/docker.sock"
OWNER = os.environ["KEYSTONE_REAPER_OWNER"]
LISTINGS = {"containers": "containers/json", "networks": "networks", "volumes": "volumes"}


class EngineConnection(http.client.HTTPConnection):
    def __init__(self) -> None:
        super().__init__("localhost", timeout=60)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(SOCKET)


def call(method: str, path: str) -> object:
    engine = EngineConnection()
    try:
        engine.request(method, path)
        response = engine.getresponse()
        body = response.read()
    finally:
        engine.close()
    if response.status >= 400 and response.status != 404:
        print(f"{method} {path}: {response.status} {body[:200]!r}", file=sys.stderr)
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    return json.loads(body) if body and is_json else None


def owned(kind: str) -> list[dict[str, object]]:
    """The owner's containers, networks or volumes (`kind`), kept sandboxes and reapers left out."""
    selector = json.dumps({"label": ["keystone.managed=true", f"keystone.owner={OWNER}"]})
    query = urllib.parse.urlencode({"filters": selector, **({"all": "1"} if kind == "containers" else {})})
    listed = call("GET", f"/{LISTINGS[kind]}?{query}")
    if isinstance(listed, dict):  # volumes come wrapped: {"Volumes": [...], "Warnings": [...]}
        listed = listed.get("Volumes")
    items = listed if isinstance(listed, list) else []
    return [
        item
        for item in items
        if (item.get("Labels") or {}).get("keystone.keep") != "true"
        and (item.get("Labels") or {}).get("keystone.role") != "reaper"
    ]


def remove_everything_owned() -> None:
    # Containers first: a network with containers attached cannot be removed.
    for container in owned("containers"):
        call("DELETE", f"/containers/{container['Id']}?force=1&v=1")
    for network in owned("networks"):
        call("DELETE", f"/networks/{network['Id']}")
    for volume in owned("volumes"):
        call("DELETE", f"/volumes/{volume['Name']}?force=1")


def main() -> None:
    print(f"reaping for {OWNER} once its connection ends", flush=True)
    sys.stdin.buffer.read()  # returns at end of file: the owner's connection is gone
    remove_everything_owned()
    print("owner gone; its sandboxes are removed", flush=True)


if __name__ == "__main__":
    main()
