"""The calls a run made, read from the gateway's log: what `http_except` and the audit judge."""

from __future__ import annotations

from polarity_keystone.engine._network import gateway_calls

LOG = [
    {"ts": 5.0, "kind": "http", "host": "early.test", "allowed": True},
    {"ts": 10.0, "kind": "dns", "host": "api.stripe.com", "allowed": True, "service": "stripe"},
    {"ts": 11.0, "kind": "ingress", "port": 8080, "allowed": True},
    {
        "ts": 12.0,
        "kind": "connect",
        "host": "172.17.0.1",
        "port": 2375,
        "allowed": False,
        "reason": "destination 172.17.0.1 is the Docker host",
    },
    {
        "ts": 13.0,
        "kind": "http",
        "method": "POST",
        "host": "stripe",
        "path": "/v1/refunds",
        "allowed": True,
        "service": "stripe",
        "status": 200,
    },
]


def test_host_to_agent_ingress_is_not_a_call_the_agent_made() -> None:
    calls, _ = gateway_calls(LOG, since=10.0)

    assert [call["source"] for call in calls] == ["gateway/connect", "gateway/http"]


def test_a_refused_destination_keeps_the_gateways_reason() -> None:
    calls, lookups = gateway_calls(LOG, since=10.0)

    assert calls[0]["allowed"] is False
    assert calls[0]["reason"] == "destination 172.17.0.1 is the Docker host"
    assert "reason" not in calls[1]
    assert lookups == [{"host": "api.stripe.com", "allowed": True, "service": "stripe"}]
