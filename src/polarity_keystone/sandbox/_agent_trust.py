"""How an agent comes to trust its engine's sandbox CA (see `_engine_ca.py`), for sandboxes whose spec
overrides a host to a service that answers TLS: the CA is appended to the image's system bundle where
there is one (curl, OpenSSL, Go), and the agent's environment names a bundle of the system's CAs plus ours
(`SSL_CERT_FILE` for Python's ssl and httpx, so the `openai` and `anthropic` clients;
`REQUESTS_CA_BUNDLE` for requests) and the CA alone (`NODE_EXTRA_CA_CERTS` for Node). Only the public
certificate enters the container."""

from __future__ import annotations

CA_PATH = "/etc/keystone/sandbox-ca.pem"
BUNDLE_PATH = "/etc/keystone/ca-bundle.pem"
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
"""Debian's, Ubuntu's and Alpine's system bundle."""

_INSTALL = f"""set -e
mkdir -p /etc/keystone
printf '%s' "$1" > {CA_PATH}
if [ -f {SYSTEM_BUNDLE} ]; then
  {{ cat {SYSTEM_BUNDLE}; echo; cat {CA_PATH}; }} > {BUNDLE_PATH}
  {{ echo; cat {CA_PATH}; }} >> {SYSTEM_BUNDLE}
else
  cp {CA_PATH} {BUNDLE_PATH}
fi
chmod 644 {CA_PATH} {BUNDLE_PATH}
"""


def trust_env() -> dict[str, str]:
    """The agent's variables naming the CA files `install_command` writes."""
    return {"SSL_CERT_FILE": BUNDLE_PATH, "REQUESTS_CA_BUNDLE": BUNDLE_PATH, "NODE_EXTRA_CA_CERTS": CA_PATH}


def install_command(ca_pem: bytes) -> list[str]:
    """The command (run as root in the agent container) that writes the CA files and extends the system
    bundle."""
    return ["sh", "-c", _INSTALL, "keystone-trust", ca_pem.decode("ascii")]
