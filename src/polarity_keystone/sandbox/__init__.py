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

__all__ = [
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
