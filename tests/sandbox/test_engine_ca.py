"""The engine CA (sandbox/_engine_ca.py): made once per engine and reused, its key private to its owner,
its leaves valid for their names only; and which services the gateway sends overridden TLS to."""

from __future__ import annotations

import importlib.util
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

import polarity_keystone.sandbox
from polarity_keystone.sandbox import EngineCA, LogLine, NetworkPolicy, ServiceContainer, ServiceTls
from polarity_keystone.sandbox._gateway import Fence, gateway_config, tls_hosts

ENGINE = "4f1b2c3d-aaaa-bbbb-cccc-0123456789ab"
TLS = ServiceTls(port=443, cert_path="/tls/cert.pem", key_path="/tls/key.pem")


def verify(ca: EngineCA, leaf_pem: bytes, name: str) -> None:
    """Raises VerificationError unless `leaf_pem` chains to `ca` and holds `name`, as a client checks."""
    verifier = PolicyBuilder().store(Store([ca.certificate])).build_server_verifier(x509.DNSName(name))
    verifier.verify(x509.load_pem_x509_certificate(leaf_pem), [])


def test_the_ca_is_made_once_per_engine_and_its_key_is_private(tmp_path: Path) -> None:
    first = EngineCA.for_engine(ENGINE, tmp_path)
    again = EngineCA.for_engine(ENGINE, tmp_path)
    other = EngineCA.for_engine("ANOTHER:ENGINE", tmp_path)

    assert again.cert_pem == first.cert_pem
    assert other.cert_pem != first.cert_pem
    home = tmp_path / ENGINE
    assert stat.S_IMODE((home / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (tmp_path / "ANOTHER_ENGINE" / "ca.pem").exists()  # the id made safe as a directory name
    subject = first.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert subject == f"Keystone sandbox CA {ENGINE}"
    constraints = first.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    assert first.certificate.not_valid_after_utc > datetime.now(UTC) + timedelta(days=3000)


def test_a_leaf_is_valid_for_its_names_only_and_for_a_week(tmp_path: Path) -> None:
    ca = EngineCA.for_engine(ENGINE, tmp_path)
    leaf = ca.issue(["api.openai.com", "api.anthropic.com"])

    verify(ca, leaf.cert_pem, "api.openai.com")
    verify(ca, leaf.cert_pem, "api.anthropic.com")
    with pytest.raises(VerificationError):
        verify(ca, leaf.cert_pem, "example.com")
    with pytest.raises(VerificationError):  # another engine's CA does not vouch for it
        verify(EngineCA.for_engine("another", tmp_path), leaf.cert_pem, "api.openai.com")
    certificate = x509.load_pem_x509_certificate(leaf.cert_pem)
    assert certificate.not_valid_after_utc < datetime.now(UTC) + timedelta(days=8)
    assert b"PRIVATE KEY" in leaf.key_pem and b"PRIVATE KEY" not in leaf.cert_pem


def _service(name: str, tls: ServiceTls | None) -> ServiceContainer:
    return ServiceContainer(name=name, kind="x", image="x", readiness=LogLine("up"), ports=(80,), tls=tls)


def test_only_services_answering_tls_with_hosts_overridden_to_them_get_a_tls_port() -> None:
    services = [_service("llm", TLS), _service("idle-llm", TLS), _service("stripe", None)]
    policy = NetworkPolicy(
        default_allow=False,
        overrides={"api.openai.com": "llm", "api.anthropic.com": "llm", "api.stripe.com": "stripe"},
    )

    assert tls_hosts(policy, services) == {"llm": ("api.anthropic.com", "api.openai.com")}
    assert tls_hosts(None, services) == {}
    fence = Fence(host=(), docker_networks=(), ingress_from="172.20.0.1")
    assert '"tls_ports": {"llm": 443}' in gateway_config(policy, services, "172.22.0.0/16", fence)


def _gateway() -> ModuleType:
    folder = Path(polarity_keystone.sandbox.__file__).parent / "dockerfiles" / "gateway"
    sys.path.insert(0, str(folder))  # gateway.py imports its sibling destinations.py
    try:
        spec = importlib.util.spec_from_file_location("keystone_gateway_program", folder / "gateway.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(folder))


def test_the_gateway_sends_tls_for_an_overridden_host_to_the_services_tls_port() -> None:
    config: dict[str, Any] = {
        "overrides": {"api.openai.com": "llm", "api.stripe.com": "stripe"},
        "services": {"llm": 80, "stripe": 8080},
        "tls_ports": {"llm": 443},
    }
    policy = _gateway().Policy(config)

    assert policy.route("api.openai.com", 443).target_port == 443  # SNI on :443, or CONNECT host:443
    assert policy.route("api.openai.com", 80).target_port == 80  # plain HTTP still reaches port 80
    assert policy.route("api.stripe.com", 443).target_port == 8080  # passed through as before
    assert policy.route("api.anthropic.com", 443).allowed is False
