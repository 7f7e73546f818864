"""Sandboxes: one interface, a Docker backend."""

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
from ._docker import DockerBackend, DockerSandbox, FixtureError, connect, workspace_path
from ._images import ImageError, ImageResolver, ResolvedImage

__all__ = [
    "BootEvent",
    "BootListener",
    "DockerBackend",
    "DockerSandbox",
    "ExecResult",
    "FileInfo",
    "FixtureError",
    "ImageError",
    "ImageResolver",
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
    "workspace_path",
]
