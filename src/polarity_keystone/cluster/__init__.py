"""Replicas on a Ray cluster (`ks serve --executor ray`): the node actor and replica task that run on
each node, and the server's driver that sends replicas there. Needs the `ray` extra
(`pip install 'polarity-keystone[ray]'`); nothing else in Keystone imports Ray."""

from ._images import IMAGE_SOURCE_ENV, NodeImages
from ._node import NAMESPACE, SANDBOX_RESOURCE, KeystoneNode, RanOnNode, images_of
from ._replicas import ClusterReplicas, RayCluster, SandboxIssuer

__all__ = [
    "IMAGE_SOURCE_ENV",
    "NAMESPACE",
    "SANDBOX_RESOURCE",
    "ClusterReplicas",
    "KeystoneNode",
    "NodeImages",
    "RanOnNode",
    "RayCluster",
    "SandboxIssuer",
    "images_of",
]
