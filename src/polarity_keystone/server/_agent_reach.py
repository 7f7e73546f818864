"""Where an agent inside a sandbox reaches the server that booted it (its KEYSTONE_BASE_URL).

A URL naming this machine (127.0.0.1 for an embedded server, or any address or name of the host) means
nothing inside a container, whose loopback is its own: over plain HTTP the agent gets the same port
under `SERVER_HOST`, which its sandbox maps to the host's address on the sandbox network, and the
sandbox lets it through to that port alone. Any other URL (a shared server's `--public-url` on another
machine, or HTTPS, whose certificate names the public host) is passed on unchanged: reaching it is the
operator's affair.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..sandbox import SERVER_HOST


@dataclass(frozen=True)
class AgentReach:
    base_url: str
    """KEYSTONE_BASE_URL as the agent must use it."""
    server_port: int | None
    """The host port the sandbox must let the agent reach (None: the URL is not this host's)."""


def agent_reach(base_url: str) -> AgentReach:
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname or not _names_this_host(parts.hostname):
        return AgentReach(base_url, None)
    port = parts.port or 80
    return AgentReach(urlunsplit(parts._replace(netloc=f"{SERVER_HOST}:{port}")), port)


@functools.lru_cache(maxsize=32)
def _names_this_host(host: str) -> bool:
    """Whether `host` is loopback or resolves to an address of this machine (one a socket can bind)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(_is_local(str(info[4][0])) for info in infos)


def _is_local(address: str) -> bool:
    if ipaddress.ip_address(address.split("%")[0]).is_loopback:
        return True
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True
