"""The model proxy (`type: llm`): an OpenAI- and Anthropic-compatible server the agent calls in place of
the provider, answering from canned responses (`mock`), forwarding to the provider and keeping every
exchange (`record`), or answering from a recording with no network (`replay`).

The server itself is `sandbox/dockerfiles/llm_proxy/proxy.py` (standard library only); it reads the JSON
this module writes into `KEYSTONE_LLM_CONFIG`, and the provider keys from their own variables, filled
from the spec's secrets, so they reach only the proxy. Its log, one JSON object per call, is the
replica's recording.

An agent that ignores the base-URL variables reaches the proxy through `dns_overrides` of the provider's
host: the proxy also answers HTTPS (`TLS`), with a certificate for the overridden names that the
sandbox backend issues from its engine's CA and places before the proxy starts (`ServiceTls`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from .._jsonl import json_objects
from ..sandbox import LogLine, Readiness, Sandbox, SandboxError, ServiceContainer, ServiceTls
from ..spec import Service
from ._base import ServiceKind, register_kind

READY_MARKER = "keystone: llm_proxy ready"
CONFIG_ENV = "KEYSTONE_LLM_CONFIG"
LOG_PATH = "/var/lib/keystone-llm/exchanges.jsonl"
RECORDING_PATH = "/var/lib/keystone-llm/recording.jsonl"
TLS = ServiceTls(
    port=443, cert_path="/etc/keystone-llm/tls/cert.pem", key_path="/etc/keystone-llm/tls/key.pem"
)
"""Where the proxy answers HTTPS for hosts overridden to it, and where its certificate is placed."""
RECORDING_LIMIT = 32 * 1024 * 1024
"""Bytes of a replica's log a result keeps; the proxy caps each exchange (bodies over its limits are
marked `truncated`), this caps a long run's calls together."""
PLACEHOLDER_KEY = "keystone-llm-proxy"
"""What the agent gets as its provider key: the proxy adds the real one (record mode) on the way out."""

Exchange = dict[str, Any]
"""One model call as the proxy logged it: `call`, `provider`, `path`, `request`, `request_hash`,
`status`, `response` or `stream`, `model`, `usage`, `tool_calls`, `latency_ms`, `divergence`, ..."""


def key_variable(provider: str) -> str:
    return f"KEYSTONE_LLM_{provider.upper()}_KEY"


@register_kind
class LlmProxy(ServiceKind):
    name = "llm"
    default_port = 80
    local_image = "llm_proxy"

    def readiness(self, service: Service, local: bool) -> Readiness:
        return LogLine(READY_MARKER)

    def url(self, service: Service) -> str:
        port = self.port(service)
        return f"http://{service.name}" + ("" if port == 80 else f":{port}")

    def agent_env(self, service: Service) -> dict[str, str]:
        """The provider clients' own variables, so an agent written for the provider needs no change."""
        url = self.url(service)
        return {
            **super().agent_env(service),
            f"{service.name.upper().replace('-', '_')}_URL": url,
            "OPENAI_BASE_URL": f"{url}/v1",
            "ANTHROPIC_BASE_URL": url,
            "OPENAI_API_KEY": PLACEHOLDER_KEY,
            "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
        }

    def secret_env(self, service: Service) -> dict[str, str]:
        assert service.llm is not None
        return {key_variable(p): f"{{{{ secrets.{name} }}}}" for p, name in service.llm.api_keys.items()}

    def container_env(self, service: Service) -> dict[str, str]:
        assert service.llm is not None
        config = {
            "port": self.port(service) or self.default_port,
            "mode": service.llm.mode,
            "log_path": LOG_PATH,
            "recording_path": RECORDING_PATH,
            "upstreams": service.llm.upstreams,
            "max_calls": service.llm.max_calls,
            "responses": [response.model_dump(exclude_none=True) for response in service.llm.responses],
            "tls": {"port": TLS.port, "cert": TLS.cert_path, "key": TLS.key_path},
        }
        return {CONFIG_ENV: json.dumps(config, sort_keys=True)}

    def container(self, service: Service, image: str, *, local_image: bool = False) -> ServiceContainer:
        return replace(super().container(service, image, local_image=local_image), tls=TLS)


def as_replay(service: Service) -> Service:
    """The service answering from a recording put in with `put_recording` instead of its spec's mode."""
    assert service.llm is not None
    return service.model_copy(update={"llm": service.llm.model_copy(update={"mode": "replay"})})


def put_recording(sandbox: Sandbox, service: Service, exchanges: list[Exchange]) -> None:
    content = "".join(json.dumps(exchange, sort_keys=True) + "\n" for exchange in exchanges)
    sandbox.service_put_file(service.name, RECORDING_PATH, content.encode())


def logged_exchanges(sandbox: Sandbox, service: Service) -> list[Exchange]:
    """Every call the proxy answered (the first RECORDING_LIMIT bytes' worth), in call order; raises
    SandboxError if its log cannot be read."""
    read = f"if [ -f {LOG_PATH} ]; then head -c {RECORDING_LIMIT} {LOG_PATH}; fi"
    result = sandbox.service_exec(service.name, ["sh", "-c", read], timeout=60)
    if result.exit_code != 0:
        output = (result.stderr or result.stdout).strip()
        raise SandboxError(f"cannot read the model calls logged by {service.name!r}: {output}")
    calls = json_objects(result.stdout)  # a line is written as its call ends: calls overlap
    return sorted(
        calls, key=lambda exchange: exchange["call"] if isinstance(exchange.get("call"), int) else -1
    )
