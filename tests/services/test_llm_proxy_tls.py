"""The LLM proxy's HTTPS listener (what an agent calling https://api.openai.com reaches through
`dns_overrides`): proxy.py as its own process with a leaf of an engine CA, driven by the real `openai`
client trusting that CA through SSL_CERT_FILE; answers are those of the HTTP listener, and a client that
does not trust the CA holds up nothing."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import openai
import pytest

from polarity_keystone.sandbox import EngineCA
from tests.services.test_llm_proxy_server import LOOKUP, PLACEHOLDER, free_port, running_proxy


def test_the_proxy_answers_over_https_as_over_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = EngineCA.for_engine("test-engine", tmp_path / "ca")
    leaf = ca.issue(["localhost"])
    (tmp_path / "cert.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "key.pem").write_bytes(leaf.key_pem)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    port = free_port()
    tls = {"port": port, "cert": str(tmp_path / "cert.pem"), "key": str(tmp_path / "key.pem")}
    config = {"mode": "mock", "responses": [{"tool_calls": [LOOKUP]}], "tls": tls}

    with running_proxy(tmp_path, "tls", config) as proxy:
        untrusting = ssl.create_default_context()  # the system's CAs only: the handshake fails
        with (
            pytest.raises(ssl.SSLCertVerificationError),
            socket.create_connection(("localhost", port), timeout=10) as raw,
            untrusting.wrap_socket(raw, server_hostname="localhost"),
        ):
            pass
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # as the sandbox tells its agent
        with openai.OpenAI(
            base_url=f"https://localhost:{port}/v1", api_key=PLACEHOLDER, max_retries=0
        ) as client:
            over_https = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        with proxy.openai() as client:
            over_http = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        log = proxy.log(2)

    for completion in (over_https, over_http):
        (call,) = completion.choices[0].message.tool_calls or []
        assert call.type == "function" and call.function.name == "lookup"
    assert [exchange["call"] for exchange in log] == [0, 1]  # the refused handshake was no call
    assert log[0]["request"] == log[1]["request"]


def test_without_its_certificate_the_proxy_serves_http_only(tmp_path: Path) -> None:
    port = free_port()
    tls = {"port": port, "cert": str(tmp_path / "absent.pem"), "key": str(tmp_path / "absent-key.pem")}
    with running_proxy(tmp_path, "plain", {"mode": "mock", "tls": tls}) as proxy:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("localhost", port), timeout=10).close()
        assert proxy.post("/v1/chat/completions", b'{"messages": []}')[0] == 500  # up, no response matches
