"""The spec's `network` block as a sandbox policy, and the HTTP calls a run made, from every source.

A spec gets a gateway (and so a record of every network attempt) when it allows some hosts past a
deny, overrides DNS, or audits or restricts HTTP calls; otherwise egress is simply on or off.
"""

from __future__ import annotations

from typing import Any

from ..sandbox import NetworkPolicy
from ..spec import Spec, service_name

HttpCall = dict[str, Any]
"""{source, service, host, method, path, status, allowed, reason?} — `service` None for hosts outside the
sandbox; `reason` says why the gateway refused a destination it would otherwise allow (e.g. the host)."""


def network_policy(spec: Spec) -> NetworkPolicy | None:
    network = spec.network
    if not (
        network.ingress.allow
        or network.egress.allow
        or network.dns_overrides
        or spec.audit.http_calls
        or spec.forbidden.http_except is not None
    ):
        return None
    return NetworkPolicy(
        default_allow=network.egress.default == "allow",
        allow=tuple(network.egress.allow),
        overrides={host.lower(): service_name(target) for host, target in network.dns_overrides.items()},
        ingress=tuple(dict.fromkeys(rule.to_port for rule in network.ingress.allow)),
    )


def gateway_calls(log: list[dict[str, Any]], since: float) -> tuple[list[HttpCall], list[dict[str, Any]]]:
    """(HTTP calls, DNS lookups) the gateway saw from `since` (a wall-clock time) on."""
    calls: list[HttpCall] = []
    lookups: list[dict[str, Any]] = []
    for event in log:
        if float(event.get("ts", 0)) < since:
            continue
        if event.get("kind") == "dns":
            lookups.append(
                {"host": event.get("host"), "allowed": event.get("allowed"), "service": event.get("service")}
            )
            continue
        if event.get("kind") == "ingress":  # the host calling the agent, not a call the agent made
            continue
        reason = {"reason": event["reason"]} if event.get("reason") else {}
        calls.append(
            {
                **reason,
                "source": f"gateway/{event.get('kind')}",
                "service": event.get("service"),
                "host": event.get("host"),
                "port": event.get("port"),
                "method": event.get("method"),
                "path": event.get("path"),
                "status": event.get("status"),
                "allowed": bool(event.get("allowed")),
            }
        )
    return calls, lookups


def mock_calls(recorded: list[tuple[str, dict[str, Any]]]) -> list[HttpCall]:
    """Requests recording mocks received, as calls to those services."""
    return [
        {
            "source": "mock",
            "service": service,
            "host": service,
            "method": request.get("method"),
            "path": request.get("path"),
            "status": request.get("status"),
            "allowed": True,
        }
        for service, request in recorded
    ]
