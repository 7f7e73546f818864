"""The Keystone spec YAML as pydantic models (KEYSTONE-REFERENCE.md section 1).

Every model forbids unknown keys so a typo is an error with a suggestion, never a silently ignored
setting. Blocks the runtime does not implement yet are still modelled (so `ks spec validate` knows
them) and rejected by `unsupported_features` with a clear message.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ._units import Duration, Size

_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- task, agent, setup, resources -------------------------------------------------------------


class Task(_Block):
    prompt: str = Field(min_length=1)
    context: str | None = None
    """Extra context shown to the agent beside the prompt (written to the task file)."""


class Agent(_Block):
    type: Literal["cli", "paragon", "snapshot"]
    command: str | None = None
    """`cli`: the shell command that runs the agent, from /workspace."""
    path: str | None = None
    """`cli`: a local directory (relative to the spec) copied read-only to /opt/agent."""
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Duration | None = None
    snapshot: str | None = None

    @model_validator(mode="after")
    def _cli_needs_command(self) -> Agent:
        if self.type == "cli" and not self.command:
            raise ValueError(
                "an agent of type 'cli' needs a `command`, e.g. command: python3 /opt/agent/agent.py"
            )
        return self


def _octal_mode(value: Any) -> Any:
    """File modes are written as in chmod: `644`, `"0755"`; YAML would read 644 as decimal."""
    text = str(value)
    if isinstance(value, bool) or not re.fullmatch(r"0?[0-7]{3,4}", text):
        raise ValueError(f'mode {value!r} must be an octal file mode such as 644 or "0755"')
    return int(text, 8)


class SetupFile(_Block):
    path: str
    content: str
    mode: Annotated[int, BeforeValidator(_octal_mode)] = 0o644


class Setup(_Block):
    packages: list[str] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    files: list[SetupFile] = Field(default_factory=list)


class Resources(_Block):
    cpu: float = Field(default=2.0, gt=0)
    memory: Size = 2 * 1024**3
    disk: Size | None = None
    timeout: Duration = 600.0
    concurrency_limit: int | None = Field(default=None, ge=1)


# --- fixtures ------------------------------------------------------------------------------------


class SqlFixture(_Block):
    type: Literal["sql"]
    service: str
    sql: str | None = None
    file: str | None = None
    """A .sql file relative to the spec, instead of inline `sql`."""

    @model_validator(mode="after")
    def _one_source(self) -> SqlFixture:
        if (self.sql is None) == (self.file is None):
            raise ValueError("an sql fixture needs exactly one of `sql` (inline) or `file` (a path)")
        return self


class DirectoryFixture(_Block):
    type: Literal["directory"]
    source: str
    """A local directory, relative to the spec."""
    path: str = "/workspace"
    """Where it lands in the sandbox (relative paths are under /workspace)."""


class GitRepoFixture(_Block):
    type: Literal["git_repo"]
    url: str
    branch: str | None = None
    depth: int | None = Field(default=None, ge=1)
    path: str = "/workspace"


class DriftFixture(_Block):
    model_config = ConfigDict(extra="allow")
    type: Literal["drift"]


Fixture = Annotated[
    SqlFixture | DirectoryFixture | GitRepoFixture | DriftFixture, Field(discriminator="type")
]


# --- services ------------------------------------------------------------------------------------


class MockRoute(_Block):
    method: str = "GET"
    path: str
    response: str = ""
    status: int = 200
    headers: dict[str, str] = Field(default_factory=dict)


class Service(_Block):
    name: str
    image: str | None = None
    type: Literal["", "postgres", "redis", "http_mock", "generic"] = ""
    env: dict[str, str] = Field(default_factory=dict)
    ports: list[int] = Field(default_factory=list)
    command: str | list[str] | None = None
    wait_for: str | None = None
    """A shell command run inside the service container; readiness waits until it exits 0."""
    record: bool = False
    default_response: int = 404
    routes: list[MockRoute] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", value):
            raise ValueError(f"service name {value!r} must be a DNS label: lowercase letters, digits and '-'")
        return value

    @model_validator(mode="after")
    def _needs_image(self) -> Service:
        if self.type != "http_mock" and not self.image:
            raise ValueError("a service needs an `image` (e.g. postgres:16) unless it has type: http_mock")
        return self


# --- secrets, network, audit ---------------------------------------------------------------------


class SecretScope(_Block):
    env: bool = True
    file_template: str | None = None


class Secret(_Block):
    name: str
    source: str | None = None
    from_: str | None = Field(default=None, alias="from")
    scope: SecretScope | Literal["env"] | None = None

    @field_validator("name")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"secret name {value!r} must be a valid environment variable name")
        return value


def _secret_from_string(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class Egress(_Block):
    default: Literal["allow", "deny"] = "allow"
    allow: list[str] = Field(default_factory=list)


class IngressRule(_Block):
    from_: Literal["host"] = Field(default="host", alias="from")
    to_port: int


class Ingress(_Block):
    default: Literal["deny"] = "deny"
    allow: list[IngressRule] = Field(default_factory=list)


class Network(_Block):
    egress: Egress = Field(default_factory=Egress)
    ingress: Ingress = Field(default_factory=Ingress)
    dns_overrides: dict[str, str] = Field(default_factory=dict)


class Audit(_Block):
    db_writes: bool = False
    http_calls: bool = False
    file_writes: bool = False
    commands: bool = False


class Forbidden(_Block):
    db_writes_outside: list[str] | None = None
    http_except: list[str] | None = None
    secrets_in_logs: Literal["deny", "allow"] | None = None
    file_writes_outside: list[str] | None = None
    commands: list[str] | None = None
    """Regular expressions over the commands run in the sandbox."""
    sql: list[str] | None = None
    """Regular expressions over the SQL statements the agent sent."""
    tool_calls: list[str] | None = None
    """Tool names (or regular expressions) the agent must not call, from its trace."""


# --- invariants ----------------------------------------------------------------------------------


class FileExistsCheck(_Block):
    type: Literal["file_exists"]
    path: str


class FileAbsentCheck(_Block):
    type: Literal["file_absent"]
    path: str


class FileContentCheck(_Block):
    type: Literal["file_content"]
    path: str
    contains: str | None = None
    not_contains: str | None = None
    pattern: str | None = None

    @model_validator(mode="after")
    def _something_to_check(self) -> FileContentCheck:
        if self.contains is None and self.not_contains is None and self.pattern is None:
            raise ValueError("file_content needs at least one of `contains`, `not_contains` or `pattern`")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"`pattern` is not a valid regular expression: {exc}") from exc
        return self


class CommandExitCheck(_Block):
    type: Literal["command_exit"]
    command: str
    exit_code: int = 0
    timeout: Duration = 60.0


class SqlCheck(_Block):
    type: Literal["sql"]
    service: str
    query: str
    equals: Any = Field(validation_alias=AliasChoices("equals", "expected"))
    """The expected value (required: `equals: null` expects NULL). The Python SDK writes `expected`."""


class CustomCheck(_Block):
    type: Literal["custom"]
    command: str | None = None
    """A command run in the sandbox from /workspace; it prints `{"passed", "score", "message"}` as JSON."""
    script: str | None = None
    """A local script (relative to the spec) copied into the sandbox and run with `interpreter`."""
    interpreter: str = "python3"
    timeout: Duration = 60.0

    @model_validator(mode="after")
    def _one_source(self) -> CustomCheck:
        if (self.command is None) == (self.script is None):
            raise ValueError("a custom check needs exactly one of `command` or `script`")
        return self


class HttpMockAssertionsCheck(_Block):
    model_config = ConfigDict(extra="allow")
    type: Literal["http_mock_assertions"]


class LlmAsJudgeCheck(_Block):
    model_config = ConfigDict(extra="allow")
    type: Literal["llm_as_judge"]


Check = Annotated[
    FileExistsCheck
    | FileAbsentCheck
    | FileContentCheck
    | CommandExitCheck
    | SqlCheck
    | CustomCheck
    | HttpMockAssertionsCheck
    | LlmAsJudgeCheck,
    Field(discriminator="type"),
]


class Invariant(_Block):
    description: str = ""
    weight: float = Field(default=1.0, ge=0)
    gate: bool = False
    check: Check


# --- scoring, parallelism, the spec --------------------------------------------------------------


class Scoring(_Block):
    pass_threshold: float = Field(default=1.0, ge=0, le=1)


class Parallelism(_Block):
    replicas: int = Field(default=1, ge=1, le=10_000)
    matrix: dict[str, list[str | int | float | bool]] = Field(default_factory=dict)
    concurrency: int | None = Field(default=None, ge=1)

    @field_validator("matrix")
    @classmethod
    def _non_empty_axes(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for axis, values in value.items():
            if not values:
                raise ValueError(f"matrix axis {axis!r} has no values")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", axis):
                raise ValueError(f"matrix axis {axis!r} must be an identifier (it becomes an env var)")
        return value


class Spec(_Block):
    version: Literal[1]
    id: str
    description: str = ""
    extends: str | None = None
    base: str
    task: Task
    agent: Agent
    setup: Setup = Field(default_factory=Setup)
    resources: Resources = Field(default_factory=Resources)
    fixtures: list[Fixture] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    secrets: list[Annotated[Secret, BeforeValidator(_secret_from_string)]] = Field(default_factory=list)
    network: Network = Field(default_factory=Network)
    audit: Audit = Field(default_factory=Audit)
    forbidden: Forbidden = Field(default_factory=Forbidden)
    invariants: dict[str, Invariant] = Field(min_length=1)
    scoring: Scoring = Field(default_factory=Scoring)
    parallelism: Parallelism = Field(default_factory=Parallelism)

    @field_validator("id")
    @classmethod
    def _kebab_id(cls, value: str) -> str:
        if not _KEBAB.match(value):
            raise ValueError(f"id {value!r} must be kebab-case, e.g. 'refund-agent'")
        return value
