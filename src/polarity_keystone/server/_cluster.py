"""The server's Ray cluster, when its settings choose the `ray` executor: imported only then, so a
server without the `ray` extra never loads Ray."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._ray_address import check_answers
from ._settings import ServerSettings

if TYPE_CHECKING:
    from ..cluster import RayCluster


def connect_cluster(settings: ServerSettings) -> RayCluster | None:
    """The cluster replicas run on, connected; None with the `local` executor. ValueError without the
    `ray` extra; SandboxError when the cluster does not answer."""
    if settings.executor != "ray":
        return None
    try:
        from ..cluster import RayCluster
    except ImportError as exc:
        raise ValueError(f"the ray executor needs Ray ({exc}): pip install 'polarity-keystone[ray]'") from exc
    check_answers(settings.ray_address)
    return RayCluster(settings.ray_address, settings.store_url)
