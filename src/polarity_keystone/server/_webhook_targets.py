"""Where a webhook subscription may send: the server-side request forgery guard.

A subscription's URL comes from an API caller, yet the server is the one that connects to it. Unless the
operator allows private networks, a URL is refused when it is not http(s), carries credentials, or when
any address its host resolves to is loopback, private, link-local (cloud metadata endpoints live at
169.254.169.254), multicast, reserved or unspecified. The check runs when the subscription is made and
again before every delivery (DNS answers change), and the delivery connects to the very address checked,
so a second lookup cannot swap in another one.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(ValueError):
    """A URL the server will not send webhooks to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to for it."""

    url: str
    address: IpAddress
    host: str
    """The URL's host name: the one TLS verifies the certificate against."""

    @property
    def host_header(self) -> str:
        """The URL's host and port, as the receiver expects them in `Host`."""
        return urlsplit(self.url).netloc

    @property
    def connect_url(self) -> str:
        """The URL with its host replaced by the checked address (the port, path and query kept)."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        port = f":{parts.port}" if parts.port is not None else ""
        return parts._replace(netloc=f"{literal}{port}").geturl()


def check_url(url: str) -> SplitResult:
    """The URL's parts, when its form is one the server sends to (no lookup); UnsafeTarget otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"the URL is {len(url)} characters long; at most {MAX_URL_LENGTH} are allowed")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsing the port validates it)
    except ValueError as exc:
        raise UnsafeTarget(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("the URL must be http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("the URL may not carry credentials (user:password@); sign with the secret instead")
    if not parts.hostname:
        raise UnsafeTarget("the URL has no host")
    return parts


def _refusal(address: IpAddress, allow_private: bool) -> str | None:
    """Why the server will not connect to `address`, or None."""
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_multicast or address.is_unspecified:
        return "a multicast or unspecified address"
    if allow_private:
        return None
    for kind, applies in (
        ("loopback", address.is_loopback),
        ("link-local (cloud metadata endpoints live there)", address.is_link_local),
        ("private", address.is_private),
        ("reserved", address.is_reserved or not address.is_global),
    ):
        if applies:
            return f"a {kind} address"
    return None


def resolve_target(url: str, *, allow_private: bool) -> Target:
    """The URL checked, its host resolved and every address it resolves to checked: UnsafeTarget when the
    form or any address is refused, or the host does not resolve."""
    parts = check_url(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget(f"the host {host!r} does not resolve: {exc}") from None
    addresses = [ipaddress.ip_address(answer[4][0]) for answer in answers]
    if not addresses:
        raise UnsafeTarget(f"the host {host!r} does not resolve")
    for address in addresses:
        reason = _refusal(address, allow_private)
        if reason:
            raise UnsafeTarget(
                f"the host {host!r} resolves to {address}, {reason}; webhooks are not sent to private "
                "networks unless the server's operator allows them (webhook_allow_private_networks)"
            )
    return Target(url, addresses[0], host)
