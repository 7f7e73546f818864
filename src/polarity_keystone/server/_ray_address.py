"""`--ray-address`: its form, checked with the other settings, and whether anything answers there,
checked before Ray is given it. Ray tries a GCS address that refuses or ignores connections for
minutes before it fails (over 5 minutes for a refused port, measured), so a mistyped address would
hold `ks serve` up instead of stopping it with the reason."""

from __future__ import annotations

import socket

from ..sandbox import SandboxError

CONNECT_TIMEOUT_S = 5.0
_CLIENT_SCHEME = "ray://"


def host_and_port(address: str) -> tuple[str, int] | None:
    """Where `address` (`HOST:PORT`, `[V6]:PORT` or `ray://` either) is served; None for `auto` and
    `local`, which Ray resolves itself. ValueError for anything else."""
    if address in ("auto", "local"):
        return None
    host, colon, port = address.removeprefix(_CLIENT_SCHEME).rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not a Ray address: use HOST:PORT, ray://HOST:PORT or auto")
    return host, int(port)


def check_answers(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """SandboxError unless something accepts a connection where `address` (a valid one: see
    `host_and_port`) points. None: Ray starts a cluster on this machine, nothing to check."""
    served = host_and_port(address) if address is not None else None
    if served is None:
        return
    try:
        socket.create_connection(served, timeout=timeout_s).close()
    except TimeoutError:
        raise SandboxError(
            f"cannot connect to the Ray cluster at {address}: nothing answered within {timeout_s:g}s"
        ) from None
    except OSError as exc:
        raise SandboxError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}") from None
