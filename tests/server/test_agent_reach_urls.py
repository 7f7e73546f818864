"""What URL an agent inside a sandbox gets for the server, and which host port its sandbox must open."""

from __future__ import annotations

import json
import subprocess

import pytest

from polarity_keystone.server._agent_reach import AgentReach, agent_reach


def _an_address_of_this_host() -> str:
    listing = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], check=True, capture_output=True).stdout)
    found = (a["local"] for link in listing for a in link.get("addr_info", []) if a["scope"] == "global")
    return str(next(found))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8123", AgentReach("http://keystone-server:8123", 8123)),
        ("http://localhost:8123/prefix", AgentReach("http://keystone-server:8123/prefix", 8123)),
        ("http://[::1]:8123", AgentReach("http://keystone-server:8123", 8123)),
        ("http://127.0.0.1", AgentReach("http://keystone-server:80", 80)),
        # HTTPS keeps its name (the certificate's); another machine is the operator's to make reachable.
        ("https://127.0.0.1:8443", AgentReach("https://127.0.0.1:8443", None)),
        ("http://192.0.2.10:8000", AgentReach("http://192.0.2.10:8000", None)),
        ("http://keystone.invalid:8000", AgentReach("http://keystone.invalid:8000", None)),
    ],
)
def test_urls_naming_this_host_lead_agents_to_the_server_host_name(given: str, expected: AgentReach) -> None:
    assert agent_reach(given) == expected


def test_a_non_loopback_address_of_this_host_counts_as_this_host() -> None:
    address = _an_address_of_this_host()
    assert agent_reach(f"http://{address}:9000") == AgentReach("http://keystone-server:9000", 9000)
