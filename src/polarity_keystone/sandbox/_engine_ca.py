"""Each Docker engine's sandbox certificate authority, and the certificates it issues to the services that
answer for a provider's host (`dns_overrides: {api.openai.com: llm}`).

An agent that ignores OPENAI_BASE_URL calls https://api.openai.com itself; the gateway sends that TLS to
the sandbox's model proxy, which must present a certificate for api.openai.com that the agent trusts. The
CA is made once per engine (keyed by the engine's ID from `docker info`) under ~/.keystone/engine-ca/,
its key readable by its owner only and never put into a container. A service gets a leaf certificate for
exactly the host names overridden to it, valid for a week; only the agents of sandboxes whose spec
overrides a host to such a service are given the CA's certificate to trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=7)
CLOCK_SKEW = timedelta(minutes=5)
"""Certificates start this long before they are made, so a clock a little behind still accepts them."""
CERT_FILE = "ca.pem"
KEY_FILE = "ca-key.pem"
PEM = serialization.Encoding.PEM


def default_directory() -> Path:
    """Where Keystone keeps the engines' CAs: beside its other per-user state."""
    return Path.home() / ".keystone" / "engine-ca"


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


class EngineCA:
    """The CA of one Docker engine: loaded from its directory, or made there on first use."""

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.certificate = certificate
        self._key = key

    @classmethod
    def for_engine(cls, engine_id: str, directory: Path | None = None) -> EngineCA:
        """The CA of `engine_id`, made (under a lock, so concurrent processes agree on one) when its
        directory holds none yet."""
        home = (directory or default_directory()) / re.sub(r"[^A-Za-z0-9_.-]", "_", engine_id)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(home / ".lock"):
            if not (home / CERT_FILE).exists():
                key = ec.generate_private_key(ec.SECP256R1())
                _write(home / KEY_FILE, _private_pem(key), 0o600)
                _write(home / CERT_FILE, _ca_certificate(engine_id, key).public_bytes(PEM), 0o644)
            certificate = x509.load_pem_x509_certificate((home / CERT_FILE).read_bytes())
            loaded = serialization.load_pem_private_key((home / KEY_FILE).read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{home / KEY_FILE} is not the EC key Keystone makes")
        return cls(certificate, loaded)

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(PEM)

    def issue(self, names: Sequence[str]) -> IssuedCertificate:
        """A server certificate for exactly `names` (DNS names), valid for LEAF_VALIDITY."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        ca_key_id = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + LEAF_VALIDITY)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        return IssuedCertificate(certificate.public_bytes(PEM), _private_pem(key))


def _ca_certificate(engine_id: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """Self-signed, CA for leaves only (path length 0), named after the engine it belongs to."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Keystone"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Keystone sandbox CA {engine_id}"[:64]),
        ]
    )
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _write(path: Path, content: bytes, mode: int) -> None:
    """Written whole under a temporary name, then renamed: a reader never sees half a file, and the key
    never exists with a wider mode than `mode`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    os.chmod(temporary, mode)  # whatever the umask took away from a public certificate
    os.replace(temporary, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
