"""Sandboxes: one interface, a Docker backend."""

from ._base import (
    BootEvent,
    BootListener,
    ExecResult,
    FileInfo,
    FixtureError,
    FixtureStep,
    NetworkPolicy,
    Sandbox,
    SandboxBackend,
    SandboxBootError,
    SandboxError,
    SandboxPlan,
    SandboxState,
    ServiceEndpoint,
    WorkspaceDiff,
    WorkspaceState,
)
from ._docker import DockerBackend, DockerSandbox, connect, split_services, workspace_path
from ._images import ImageError, ImageResolver, ResolvedImage

__all__ = [
    "BootEvent",
    "BootListener",
    "DockerBackend",
    "DockerSandbox",
    "ExecResult",
    "FileInfo",
    "FixtureError",
    "FixtureStep",
    "ImageError",
    "ImageResolver",
    "NetworkPolicy",
    "ResolvedImage",
    "Sandbox",
    "SandboxBackend",
    "SandboxBootError",
    "SandboxError",
    "SandboxPlan",
    "SandboxState",
    "ServiceEndpoint",
    "WorkspaceDiff",
    "WorkspaceState",
    "connect",
    "split_services",
    "workspace_path",
]
