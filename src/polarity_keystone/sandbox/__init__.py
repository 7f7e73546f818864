"""Sandboxes: one interface, a Docker backend; service containers run from typed plans with readiness
strategies, built by the service kinds above (the sandbox knows none of them)."""

from ._archive import tar_directory
from ._base import (
    DEFAULT_AGENT,
    ROOT,
    AgentUser,
    BootEvent,
    BootListener,
    ExecResult,
    FileInfo,
    FixtureError,
    FixtureStep,
    NetworkPolicy,
    ResetServices,
    Sandbox,
    SandboxBackend,
    SandboxBootError,
    SandboxError,
    SandboxPlan,
    SandboxStatus,
    ServiceEndpoint,
    SettleReport,
    WorkspaceDiff,
    WorkspaceSnapshot,
)
from ._deny import DeniedRanges, denied_from_environment
from ._docker import DockerBackend, DockerSandbox, connect, split_services, workspace_path
from ._engine_ca import EngineCA, IssuedCertificate
from ._gateway import SERVER_HOST, gateway_hosts_from_environment
from ._hardening import disk_quota_problem, runtime_problem
from ._images import ImageError, ImageResolver, ResolvedImage, UnknownUser, local_ref
from ._output import OUTPUT_LIMIT
from ._processes import AgentProcess
from ._service_plan import CommandSucceeds, LogLine, Readiness, ServiceContainer, ServiceTls, StaysUp

__all__ = [
    "DEFAULT_AGENT",
    "OUTPUT_LIMIT",
    "ROOT",
    "SERVER_HOST",
    "AgentProcess",
    "AgentUser",
    "BootEvent",
    "BootListener",
    "CommandSucceeds",
    "DeniedRanges",
    "DockerBackend",
    "DockerSandbox",
    "EngineCA",
    "ExecResult",
    "FileInfo",
    "FixtureError",
    "FixtureStep",
    "ImageError",
    "ImageResolver",
    "IssuedCertificate",
    "LogLine",
    "NetworkPolicy",
    "Readiness",
    "ResetServices",
    "ResolvedImage",
    "Sandbox",
    "SandboxBackend",
    "SandboxBootError",
    "SandboxError",
    "SandboxPlan",
    "SandboxStatus",
    "ServiceContainer",
    "ServiceEndpoint",
    "ServiceTls",
    "SettleReport",
    "StaysUp",
    "UnknownUser",
    "WorkspaceDiff",
    "WorkspaceSnapshot",
    "connect",
    "denied_from_environment",
    "disk_quota_problem",
    "gateway_hosts_from_environment",
    "local_ref",
    "runtime_problem",
    "split_services",
    "tar_directory",
    "workspace_path",
]
