"""A node loads images from an image source over TCP with TLS, as `dockerd --tlsverify` serves it (and
the `docker:dind` image, whose client certificate a node mounts): a real dockerd on loopback with a
certificate authority of the test's own. With the node's client certificate the image arrives with the
source's id; without one, or with a certificate of another authority, the source refuses and the node
says where it could not get the image; a certificate directory that lacks a file is named."""

from __future__ import annotations

import contextlib
import io
import secrets
import socket
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import docker
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from polarity_keystone.cluster import NodeImages
from polarity_keystone.sandbox import SandboxError
from tests.cluster.nodes import NodeEngine, start_engine

pytestmark = pytest.mark.docker


@dataclass(frozen=True)
class Authority:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def new(cls, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            _builder(subject, subject, key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(subject, key, certificate)

    def write(self, directory: Path, common_name: str, usage: x509.ObjectIdentifier) -> Path:
        """A leaf of this authority in Docker's layout (ca.pem, cert.pem, key.pem) in `directory`."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = _builder(subject, self.name, key).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            names = x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))])
            builder = builder.add_extension(names, critical=False)
        directory.mkdir(parents=True)
        pem = serialization.Encoding.PEM
        (directory / "ca.pem").write_bytes(self.certificate.public_bytes(pem))
        (directory / "cert.pem").write_bytes(builder.sign(self.key, hashes.SHA256()).public_bytes(pem))
        (directory / "key.pem").write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return directory


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )


@dataclass(frozen=True)
class TlsSource:
    url: str
    engine: NodeEngine
    client_certs: Path
    stranger_certs: Path
    image: str
    image_id: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tiny_image(client: docker.DockerClient) -> tuple[str, str]:
    """An image of one file, imported on `client`'s engine under a name of its own: (ref, id)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"hi\n"))
    ref = f"keystone-test/tls-source:{secrets.token_hex(4)}"
    client.api.import_image_from_data(buffer.getvalue(), repository=ref.split(":")[0], tag=ref.split(":")[1])
    return ref, str(client.images.get(ref).id)


@pytest.fixture(scope="module")
def tls_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSource]:
    pki = tmp_path_factory.mktemp("pki")
    authority = Authority.new("Keystone test CA")
    server = authority.write(pki / "server", "image-source", ExtendedKeyUsageOID.SERVER_AUTH)
    client_certs = authority.write(pki / "client", "node", ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger = Authority.new("Another CA")
    stranger_certs = stranger.write(pki / "stranger", "node", ExtendedKeyUsageOID.CLIENT_AUTH)
    url = f"tcp://127.0.0.1:{_free_port()}"
    engine = start_engine(
        "tls",
        "10.241.20.1/24",
        "10.250.0.0/16",
        "--host",
        url,
        "--tlsverify",
        "--tlscacert",
        str(server / "ca.pem"),
        "--tlscert",
        str(server / "cert.pem"),
        "--tlskey",
        str(server / "key.pem"),
    )
    try:
        with contextlib.closing(engine.client()) as client:
            image, image_id = _tiny_image(client)
        yield TlsSource(url, engine, client_certs, stranger_certs, image, image_id)
    finally:
        engine.stop()


@pytest.fixture
def node() -> Iterator[docker.DockerClient]:
    """This machine's main engine as the node's: it lacks the source's image before each test."""
    client = docker.from_env(timeout=120)
    yield client
    client.close()


def _remove(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(ref, force=True)


def test_a_node_with_its_client_certificate_loads_the_image_with_the_sources_id(
    tls_source: TlsSource, node: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many hosts set REQUESTS_CA_BUNDLE, which requests would check the source's certificate against
    instead of the authority given: here a bundle without that authority."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_source.stranger_certs / "ca.pem"))
    _remove(node, tls_source.image)
    try:
        NodeImages(node, tls_source.url, str(tls_source.client_certs)).ensure([tls_source.image])
        assert node.images.get(tls_source.image).id == tls_source.image_id
    finally:
        _remove(node, tls_source.image)


@pytest.mark.parametrize("certs", ["none", "another authority's"])
def test_the_source_refuses_a_node_without_a_certificate_of_its_authority(
    tls_source: TlsSource, node: docker.DockerClient, certs: str
) -> None:
    _remove(node, tls_source.image)
    cert_path = "" if certs == "none" else str(tls_source.stranger_certs)
    expected = (
        rf"image {tls_source.image} is not on this node and could not be had from the image source tcp://"
    )
    with pytest.raises(SandboxError, match=expected):
        NodeImages(node, tls_source.url, cert_path).ensure([tls_source.image])
    with pytest.raises(docker.errors.ImageNotFound):
        node.images.get(tls_source.image)


def test_a_certificate_directory_that_lacks_a_file_or_a_source_not_over_tcp_is_named(
    tls_source: TlsSource, node: docker.DockerClient, tmp_path: Path
) -> None:
    _remove(node, tls_source.image)
    (tmp_path / "ca.pem").write_bytes((tls_source.client_certs / "ca.pem").read_bytes())
    lacks = r"KEYSTONE_IMAGE_SOURCE_CERT_PATH=.* lacks .*/cert.pem, .*/key.pem"
    with pytest.raises(SandboxError, match=lacks):
        NodeImages(node, tls_source.url, str(tmp_path)).ensure([tls_source.image])
    with pytest.raises(SandboxError, match=r"the image source unix:///nowhere.sock is not tcp://"):
        NodeImages(node, "unix:///nowhere.sock", str(tls_source.client_certs)).ensure([tls_source.image])
