"""The built-in HTTP mock (`type: http_mock`): Keystone's own image, configured from the spec's routes,
recording every request for `http_mock_assertions` checks.

The server itself is `sandbox/dockerfiles/http_mock/mock.py` (standard library only, so it runs on a
bare Debian image); it reads the JSON this module writes into `KEYSTONE_MOCK_CONFIG`.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from importlib import resources
from types import ModuleType
from typing import Any

from .._jsonl import json_objects
from ..sandbox import CommandSucceeds, LogLine, Readiness, Sandbox, SandboxError
from ..spec import Service
from ._base import ServiceKind, register_kind

READY_MARKER = "keystone: http_mock ready"
CONFIG_ENV = "KEYSTONE_MOCK_CONFIG"
RECORD_PATH = "/var/lib/keystone-mock/requests.jsonl"
"""Inside the mock's container: one JSON object per request, in arrival order."""


@register_kind
class HttpMock(ServiceKind):
    name = "http_mock"
    default_port = 80
    local_image = "http_mock"

    def readiness(self, service: Service, local: bool) -> Readiness:
        if service.wait_for:
            return CommandSucceeds(service.wait_for)
        return LogLine(READY_MARKER)

    def url(self, service: Service) -> str:
        port = self.port(service)
        return f"http://{service.name}" + ("" if port == 80 else f":{port}")

    def agent_env(self, service: Service) -> dict[str, str]:
        env = super().agent_env(service)
        env[f"{service.name.upper().replace('-', '_')}_URL"] = self.url(service)
        return env

    def container_env(self, service: Service) -> dict[str, str]:
        return {CONFIG_ENV: config_json(service, self.port(service) or self.default_port)}

    resettable = True

    def reset(self, sandbox: Sandbox, service: Service) -> None:
        """The recorded requests forgotten (the routes never change)."""
        result = sandbox.service_exec(service.name, ["sh", "-c", f": > {RECORD_PATH}"])
        if result.exit_code != 0:
            raise SandboxError(f"resetting mock {service.name!r} failed: {result.stderr.strip()}")

    def state_digest(self, sandbox: Sandbox, service: Service) -> str:
        result = sandbox.service_exec(
            service.name, ["sh", "-c", f"wc -c < {RECORD_PATH} 2>/dev/null || echo 0"]
        )
        return f"recorded {result.stdout.strip()} bytes"


def config_json(service: Service, port: int) -> str:
    """The server's configuration: the routes as declared, the fallback status, whether to record."""
    config = {
        "port": port,
        "default_response": service.default_response,
        "record": service.record,
        "record_path": RECORD_PATH,
        "routes": [route.model_dump() for route in service.routes],
    }
    return json.dumps(config, sort_keys=True)


def _load_server_module() -> ModuleType:
    """The mock server's own module (it runs in the container, stdlib only), so the path rules used
    by assertions are the very ones the server matched routes with."""
    source = resources.files("polarity_keystone.sandbox") / "dockerfiles" / "http_mock" / "mock.py"
    spec = importlib.util.spec_from_loader("keystone_http_mock_server", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source.read_text(), str(source), "exec"), module.__dict__)
    return module


compile_path: Callable[[str], re.Pattern[str]] = _load_server_module().compile_path
"""A route or assertion path as a regex: `{name}` is one segment, `*` anything (slashes too)."""


def recorded_requests(sandbox: Sandbox, service: Service) -> list[dict[str, Any]]:
    """Every request the mock recorded, oldest first; raises SandboxError if the log cannot be read
    (the service does not record, or is gone)."""
    if not service.record:
        raise SandboxError(f"http_mock service {service.name!r} does not record requests (set record: true)")
    result = sandbox.service_exec(service.name, ["cat", RECORD_PATH], timeout=30)
    if result.exit_code != 0:
        output = (result.stderr or result.stdout).strip()
        raise SandboxError(f"cannot read the requests recorded by {service.name!r}: {output}")
    return json_objects(result.stdout)
