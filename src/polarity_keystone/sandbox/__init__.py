"""Sandboxes: one interface, a Docker backend."""

from ._docker import DockerBackend, DockerSandbox, FixtureError, connect, workspace_path
from ._images import ImageError, ImageResolver, ResolvedImage
from ._base import (
    BootEvent,
    BootListener,
    ExecResult,
    FileInfo,
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

__all__ = [
    "DockerBackend",
    "DockerSandbox",
    "FixtureError",
    "ImageError",
    "ImageResolver",
    "ResolvedImage",
    "connect",
    "workspace_path",
    "BootEvent",
    "BootListener",
    "ExecResult",
    "FileInfo",
    "Sandbox",
    "SandboxBackend",
    "SandboxBootError",
    "SandboxError",
    "SandboxPlan",
    "SandboxState",
    "ServiceEndpoint",
    "WorkspaceDiff",
    "WorkspaceState",
]
