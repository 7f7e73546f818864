"""The Keystone spec YAML as pydantic models (KEYSTONE-REFERENCE.md section 1).

Every model forbids unknown keys so a typo is an error with a suggestion, never a silently ignored
setting. Blocks the runtime does not implement yet are still modelled (so `ks spec validate` knows
them) and rejected by `unsupported_features` with a clear message.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from ._limits import (
    MAX_FIXTURES,
    MAX_ID_LENGTH,
    MAX_INVARIANTS,
    MAX_SCENARIOS,
    MAX_SERVICES,
    Cpu,
    JsonData,
    Memory,
    SpecPath,
    SqlValue,
    Timeout,
)
from ._units import Size

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
    path: SpecPath | None = None
    """`cli`: a local directory (relative to the spec) copied read-only to /opt/agent."""
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Timeout | None = None
    snapshot: str | None = None
    """`snapshot`: the uploaded agent snapshot's name (Keystone's documented spelling of `name`)."""
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    """`snapshot`: the uploaded agent snapshot's name, resolved in the caller's project."""
    tag: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    """`snapshot`: run the version this tag points at when the experiment is created (default: latest)."""
    version: int | None = Field(default=None, ge=1)
    """`snapshot`: run this version."""
    user: str | None = Field(default=None, pattern=r"^([a-z_][a-z0-9_.-]{0,31}|[0-9]{1,9}(:[0-9]{1,9})?)$")
    """Who the agent command runs as: by default Keystone's unprivileged `agent` user (uid 10001, home
    /home/agent); `root` opts in to root, and a user name of the image or a `uid[:gid]` picks another."""

    @model_validator(mode="after")
    def _cli_needs_command(self) -> Agent:
        if self.type == "cli" and not self.command:
            raise ValueError(
                "an agent of type 'cli' needs a `command`, e.g. command: python3 /opt/agent/agent.py"
            )
        if self.type == "snapshot":
            if not self.snapshot_name:
                raise ValueError("an agent of type 'snapshot' needs a `name`, e.g. name: email-agent")
            if self.name and self.snapshot and self.name != self.snapshot:
                raise ValueError("`name` and `snapshot` both name the snapshot: give one")
            if self.tag is not None and self.version is not None:
                raise ValueError("give a snapshot's `tag` or its `version`, not both")
        return self

    @property
    def snapshot_name(self) -> str | None:
        return self.name or self.snapshot


def _octal_mode(value: Any) -> Any:
    """File modes are written as in chmod: `644`, `"0755"`; YAML would read 644 as decimal."""
    text = str(value)
    if isinstance(value, bool) or not re.fullmatch(r"0?[0-7]{3,4}", text):
        raise ValueError(f'mode {value!r} must be an octal file mode such as 644 or "0755"')
    return int(text, 8)


class SetupFile(_Block):
    path: SpecPath
    content: str
    mode: Annotated[int, BeforeValidator(_octal_mode)] = 0o644


_PROJECT = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_EXTRAS = rf"\[\s*{_PROJECT}(?:\s*,\s*{_PROJECT})*\s*\]"
_EXACT_PIN = re.compile(rf"{_PROJECT}(?:{_EXTRAS})?\s*==\s*[0-9][A-Za-z0-9.+!_-]*")


def _exact_pin(value: str) -> str:
    """`openai==1.109.1`, extras allowed (`psycopg[binary]==3.2.10`): the image is built once per
    requirement list, so a range would freeze whatever version happened to be newest at that build."""
    if _EXACT_PIN.fullmatch(value.strip()):
        return value.strip()
    name = re.match(rf"({_PROJECT})\s*(?:{_EXTRAS})?\s*(?:[<>=!~;]|$)", value.strip())
    example = f"{name.group(1)}==<version>" if name else "openai==<version>"
    raise ValueError(f"{value!r} is not an exact pin: give one version, e.g. {example}")


PinnedRequirement = Annotated[str, AfterValidator(_exact_pin)]


class Setup(_Block):
    packages: list[str] = Field(default_factory=list)
    pip: list[PinnedRequirement] = Field(default_factory=list)
    """Keystone extension: Python packages installed with pip after `packages` and `files`, before
    `commands`; their wheels (dependencies included) are downloaded on the host, so the image needs
    python3 but no pip and no index."""
    commands: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    files: list[SetupFile] = Field(default_factory=list)


class Resources(_Block):
    cpu: Cpu = 2.0
    memory: Memory = 2 * 1024**3
    disk: Size | None = None
    """The agent container's writable layer (its whole file system); enforced with the storage driver's
    quota, and refused at preparation by an engine that has none."""
    timeout: Timeout = 600.0
    concurrency_limit: int | None = Field(default=None, ge=1)
    pids: int = Field(default=512, ge=32, le=65536)
    """Keystone extension: at most this many processes and threads in the agent container (and in each
    service container), so a fork bomb stops at the limit."""
    fresh_services: bool = False
    """Keystone extension: boot every replica's services afresh. By default replicas of a scenario may
    share them, reset in between (verified equal to a fresh boot's state, else booted afresh)."""
    runtime: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Keystone extension: the Docker runtime of the agent container, e.g. `runsc` (gVisor), where the
    server sets none; a server's runtime (`ks serve --runtime`, KEYSTONE_RUNTIME) always wins."""


# --- fixtures ------------------------------------------------------------------------------------


class SqlFixture(_Block):
    type: Literal["sql"]
    service: str
    sql: str | None = None
    file: SpecPath | None = None
    """A .sql file relative to the spec, instead of inline `sql`."""

    @model_validator(mode="after")
    def _one_source(self) -> SqlFixture:
        if (self.sql is None) == (self.file is None):
            raise ValueError("an sql fixture needs exactly one of `sql` (inline) or `file` (a path)")
        return self


class DirectoryFixture(_Block):
    type: Literal["directory"]
    source: SpecPath
    """A local directory, relative to the spec."""
    path: SpecPath = "/workspace"
    """Where it lands in the sandbox (relative paths are under /workspace)."""


_REMOTE_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)
_FILE_URL = "file://"


def local_repository(url: str) -> str | None:
    """The local path a `git_repo` url names (a path, or a file:// URL), or None for a remote URL."""
    if url.lower().startswith(_FILE_URL):
        return url[len(_FILE_URL) :]
    return None if _REMOTE_URL.match(url) else url


class GitRepoFixture(_Block):
    type: Literal["git_repo"]
    url: str
    branch: str | None = None
    depth: int | None = Field(default=None, ge=1)
    path: SpecPath = "/workspace"


class DriftFixture(_Block):
    model_config = ConfigDict(extra="allow")
    type: Literal["drift"]


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _bucket_name(value: str) -> str:
    if not _BUCKET.fullmatch(value) or ".." in value:
        raise ValueError(
            f"bucket {value!r} is not a valid S3 bucket name: 3-63 lowercase letters, digits, '.' and '-',"
            " starting and ending with a letter or digit"
        )
    return value


BucketName = Annotated[str, AfterValidator(_bucket_name)]


class S3Fixture(_Block):
    """Objects in a bucket of an `s3` service: inline `objects` (key -> text) and/or the files of a
    local directory `source` (relative to the spec), uploaded under `prefix`. The bucket is created."""

    type: Literal["s3"]
    service: str
    bucket: BucketName
    objects: dict[str, str] = Field(default_factory=dict)
    source: SpecPath | None = None
    prefix: str = ""


Fixture = Annotated[
    SqlFixture | DirectoryFixture | GitRepoFixture | DriftFixture | S3Fixture, Field(discriminator="type")
]


def _valid_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    return value


Regex = Annotated[str, AfterValidator(_valid_regex)]
"""A regular expression (Python syntax), checked when the spec loads."""


# --- services ------------------------------------------------------------------------------------


def _json_body(value: Any) -> Any:
    """`response: {id: ch_1}` (a YAML mapping or list) is sent as its JSON text."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def _http_status(value: int) -> int:
    if not 100 <= value <= 599:
        raise ValueError(f"{value} is not an HTTP status code (100-599)")
    return value


def _http_method(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]+|\*", value):
        raise ValueError(f"method {value!r} must be an HTTP method such as GET or POST, or `*`")
    return value.upper()


def _url_path(value: str) -> str:
    if not value.startswith(("/", "*")):
        raise ValueError(f"path {value!r} must start with `/`, e.g. /v1/charges")
    return value


HttpStatus = Annotated[int, AfterValidator(_http_status)]
HttpMethod = Annotated[str, AfterValidator(_http_method)]
UrlPath = Annotated[str, AfterValidator(_url_path)]


class MockRoute(_Block):
    """One route of an `http_mock` service: `{method, path, response, status, headers}`.

    The first route (in order) whose method and path match a request answers it. `method` is
    case-insensitive; `*` (or `ANY`) matches every method. `path` is matched without the query string:
    literal text must be equal, `{name}` matches one non-empty segment (`/v1/charges/{id}`) and `*`
    matches anything, slashes included (`/v1/*`). `response` is the body; a mapping or list is sent as
    JSON, and a body that is a JSON object or array gets `Content-Type: application/json` unless
    `headers` sets a content type.
    """

    method: HttpMethod = "GET"
    path: UrlPath
    response: Annotated[str, BeforeValidator(_json_body)] = ""
    status: HttpStatus = 200
    headers: dict[str, str] = Field(default_factory=dict)


LlmProvider = Literal["openai", "anthropic"]


class LlmMatch(_Block):
    """When a canned response answers: every condition given must hold."""

    call: int | None = Field(default=None, ge=0)
    """The call's number among the requests this replica sent the proxy, from 0 (a model listing counts)."""
    contains: str | None = None
    """Text the request's last message contains (a tool result included)."""


class LlmToolCall(_Block):
    name: str = Field(min_length=1, max_length=64)
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None
    """Default: a deterministic id per call and position, so a re-run sends identical requests."""


class LlmUsage(_Block):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class LlmResponse(_Block):
    """One canned model answer of an `llm` service in `mock` mode, in whichever provider's shape the
    agent asked (OpenAI chat completions or Anthropic messages), streamed when the agent streams."""

    match: LlmMatch | None = None
    content: str = ""
    tool_calls: list[LlmToolCall] = Field(default_factory=list)
    usage: LlmUsage | None = None
    """Default: estimated from the text (a token per four characters)."""
    model: str | None = None
    """Default: the model the request named."""
    status: HttpStatus = 200
    error: str | None = None
    """With a `status` of 400 or more: the message of the provider-shaped error body."""


DEFAULT_LLM_UPSTREAMS: dict[LlmProvider, str] = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
}


class LlmProxy(_Block):
    """Keystone extension, the `llm` block of a `type: llm` service: an OpenAI- and Anthropic-compatible
    proxy the agent calls in place of the provider (its clients get `OPENAI_BASE_URL` and
    `ANTHROPIC_BASE_URL`). `mock` answers from `responses`, offline; `record` forwards to the provider
    with the key of the secret `api_keys` names (the agent holds only a placeholder) and keeps every
    exchange in the replica's result, so `ks replay --recording` can answer the same calls again."""

    mode: Literal["mock", "record", "replay"] = "mock"
    responses: list[LlmResponse] = Field(default_factory=list, max_length=1000)
    upstreams: dict[LlmProvider, str] = Field(default_factory=lambda: dict(DEFAULT_LLM_UPSTREAMS))
    api_keys: dict[LlmProvider, str] = Field(default_factory=dict)
    """Provider -> the name of a spec secret holding its API key."""
    max_calls: int = Field(default=1000, ge=1, le=10_000)

    @field_validator("upstreams")
    @classmethod
    def _http_urls(cls, value: dict[LlmProvider, str]) -> dict[LlmProvider, str]:
        for provider, url in value.items():
            if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
                example = DEFAULT_LLM_UPSTREAMS[provider]
                raise ValueError(f"upstream of {provider} {url!r} must be an http(s) URL, e.g. {example}")
        return {**DEFAULT_LLM_UPSTREAMS, **value}

    @model_validator(mode="after")
    def _mode_needs(self) -> LlmProxy:
        if self.mode == "replay":
            raise ValueError(
                "mode: replay is set by `ks replay --recording FILE`, not in a spec; use mock or record"
            )
        if self.mode == "mock" and not self.responses:
            raise ValueError("mode: mock needs `responses` (the canned answers, first match wins)")
        return self


class Service(_Block):
    name: str
    image: str | None = None
    type: Literal["", "postgres", "redis", "http_mock", "s3", "llm", "generic"] = ""
    env: dict[str, str] = Field(default_factory=dict)
    ports: list[int] = Field(default_factory=list)
    command: str | list[str] | None = None
    wait_for: str | None = None
    """A shell command run inside the service container; readiness waits until it exits 0."""
    record: bool = False
    """`http_mock` only: record every request, for `http_mock_assertions` checks."""
    default_response: HttpStatus = 404
    """`http_mock` only: the status of a request no route matches."""
    routes: list[MockRoute] = Field(default_factory=list)
    """`http_mock` only: the mock's routes, first match wins."""
    llm: LlmProxy | None = None
    """`llm` only: how the model proxy answers (Keystone extension)."""

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", value):
            raise ValueError(f"service name {value!r} must be a DNS label: lowercase letters, digits and '-'")
        return value

    @model_validator(mode="after")
    def _needs_image(self) -> Service:
        if self.type not in ("http_mock", "s3", "llm") and not self.image:
            raise ValueError(
                "a service needs an `image` (e.g. postgres:16) unless it has type: http_mock, s3 or llm"
            )
        if self.type != "http_mock" and (self.routes or self.record):
            raise ValueError("`routes` and `record` only apply to a service with type: http_mock")
        if (self.type == "llm") != (self.llm is not None):
            raise ValueError("a service with type: llm needs an `llm` block (mode, responses), and only it")
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


INTERNAL_SUFFIX = ".services.internal"


def service_name(reference: str) -> str:
    """The service a network name refers to: `stripe.services.internal` (the reference's network
    examples) and `stripe` name the same service."""
    return reference.lower().removesuffix(INTERNAL_SUFFIX)


class Network(_Block):
    egress: Egress = Field(default_factory=Egress)
    ingress: Ingress = Field(default_factory=Ingress)
    dns_overrides: dict[str, str] = Field(default_factory=dict)


class Audit(_Block):
    db_writes: bool = False
    http_calls: bool = False
    file_writes: bool = False
    commands: bool = False
    service_state: bool = False
    """Snapshot Postgres rows, Redis keys and S3 objects before and after the agent (a Keystone extension)."""


class Forbidden(_Block):
    db_writes_outside: list[str] | None = None
    http_except: list[str] | None = None
    secrets_in_logs: Literal["deny", "allow"] | None = None
    file_writes_outside: list[str] | None = None
    commands: list[Regex] | None = None
    """Regular expressions over the commands run in the sandbox."""
    sql: list[Regex] | None = None
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
    pattern: Regex | None = None

    @model_validator(mode="after")
    def _something_to_check(self) -> FileContentCheck:
        if self.contains is None and self.not_contains is None and self.pattern is None:
            raise ValueError("file_content needs at least one of `contains`, `not_contains` or `pattern`")
        return self


class CommandExitCheck(_Block):
    type: Literal["command_exit"]
    command: str
    exit_code: int = 0
    timeout: Timeout = 60.0


class SqlCheck(_Block):
    type: Literal["sql"]
    service: str
    query: str
    equals: SqlValue = Field(validation_alias=AliasChoices("equals", "expected"))
    """The expected value (required: `equals: null` expects NULL). The Python SDK writes `expected`."""


class CustomCheck(_Block):
    type: Literal["custom"]
    command: str | None = None
    """A command run in the sandbox from /workspace; it prints `{"passed", "score", "message"}` as JSON."""
    script: SpecPath | None = None
    """A local script (relative to the spec) copied into the sandbox and run with `interpreter`."""
    interpreter: str = "python3"
    timeout: Timeout = 60.0

    @model_validator(mode="after")
    def _one_source(self) -> CustomCheck:
        if (self.command is None) == (self.script is None):
            raise ValueError("a custom check needs exactly one of `command` or `script`")
        return self


class MockRequestAssertion(_Block):
    """Which recorded requests of an `http_mock` service to count, and how many there must be.

    The filters narrow the requests; every filter given must hold: `method` (case-insensitive),
    `path` (the same patterns as routes: `{name}`, `*`; the query string is not part of it), `query`
    (a subset of the query parameters), `headers` (a subset, names case-insensitive; values are
    globs, so `*` only asks that the header is present and `Bearer *` that it starts with "Bearer "),
    `body_contains` (a substring of the raw body) and `json` (a subset of the JSON body: mappings may
    hold more keys, lists must match item by item, scalars must be equal). Then the count: `called:
    true` (the default) asks for at least one match and `called: false` for none; `count` asks for
    exactly that many, `min_count` / `max_count` for bounds.
    """

    method: HttpMethod | None = None
    path: UrlPath | None = None
    query: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    body_contains: str | None = None
    json_: JsonData = Field(default=None, alias="json")
    called: bool = True
    count: int | None = Field(default=None, ge=0)
    min_count: int | None = Field(default=None, ge=0)
    max_count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent_counts(self) -> MockRequestAssertion:
        if self.count is not None and (self.min_count is not None or self.max_count is not None):
            raise ValueError("give either `count` or `min_count`/`max_count`, not both")
        if self.min_count is not None and self.max_count is not None and self.min_count > self.max_count:
            raise ValueError(f"min_count {self.min_count} is greater than max_count {self.max_count}")
        if not self.called and any(n for n in (self.count, self.min_count) if n):
            raise ValueError("`called: false` contradicts a positive `count`/`min_count`")
        return self

    def bounds(self) -> tuple[int, int | None]:
        """(least, most) matching requests allowed; `most` None means no upper bound."""
        if not self.called:
            return 0, 0
        if self.count is not None:
            return self.count, self.count
        if self.min_count is None and self.max_count is None:
            return 1, None
        return self.min_count or 0, self.max_count


class HttpMockAssertionsCheck(MockRequestAssertion):
    """Was the `http_mock` service `service` (which needs `record: true`) called the right way?

    Either one assertion as flat fields (see `MockRequestAssertion`)::

        check: {type: http_mock_assertions, service: stripe-mock, method: POST, path: /v1/charges,
                json: {amount: 4999}, count: 1}

    or several under `assertions`, all of which must hold::

        check:
          type: http_mock_assertions
          service: stripe-mock
          assertions:
            - {method: POST, path: /v1/charges, count: 1}
            - {path: /v1/refunds, called: false}
    """

    type: Literal["http_mock_assertions"]
    service: str
    assertions: list[MockRequestAssertion] = Field(default_factory=list)

    @model_validator(mode="after")
    def _flat_or_list(self) -> HttpMockAssertionsCheck:
        flat = set(MockRequestAssertion.model_fields) & self.model_fields_set
        if self.assertions and flat:
            names = ", ".join(f"`{MockRequestAssertion.model_fields[n].alias or n}`" for n in sorted(flat))
            raise ValueError(f"put {names} inside one of the `assertions`, or drop `assertions`")
        return self

    def all_assertions(self) -> list[MockRequestAssertion]:
        """The assertions to evaluate: the list, or the flat fields as one."""
        if self.assertions:
            return self.assertions
        fields = {name: getattr(self, name) for name in MockRequestAssertion.model_fields}
        return [MockRequestAssertion.model_construct(**fields)]


JUDGE_TEXT_CAP = 4096
"""Characters allowed in `criteria` and in each rubric entry: they go into every judge prompt."""

_JUDGE_INPUT = re.compile(
    r"^(?:agent_output|stdout|workspace|file:.+|(?P<service>[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)"
    r"\.last_request(?:\.body)?)$"
)


class JudgeRubric(_Block):
    """What a passing and a failing answer look like, shown to the judge."""

    pass_: str | None = Field(default=None, alias="pass", max_length=JUDGE_TEXT_CAP)
    fail: str | None = Field(default=None, max_length=JUDGE_TEXT_CAP)


class S3ObjectCheck(_Block):
    """An object in a bucket of an `s3` service: it exists (or, with `exists: false`, does not), and its
    text `contains` a substring, `equals` a value exactly, or matches the regular expression `pattern`."""

    type: Literal["s3_object"]
    service: str
    bucket: BucketName
    key: str = Field(min_length=1)
    exists: bool = True
    contains: str | None = None
    equals: str | None = None
    pattern: Regex | None = None

    @model_validator(mode="after")
    def _consistent(self) -> S3ObjectCheck:
        content = [name for name in ("contains", "equals", "pattern") if getattr(self, name) is not None]
        if not self.exists and content:
            raise ValueError(f"`exists: false` contradicts `{content[0]}`: an absent object has no content")
        return self


class LlmAsJudgeCheck(_Block):
    """Does a language model rate the input above `pass_threshold`? The score is the judge's, in [0, 1].

    `input_from` selects what the judge reads: `agent_output` (the default) or `stdout`, the agent's
    stdout; `workspace`, every text file under /workspace (capped); `file:<path>`, one workspace file;
    `<service>.last_request.body` or `<service>.last_request`, the last request an `http_mock` service
    with `record: true` received (its body, or method, path, headers and body). Provider keys come
    from the environment of the machine running Keystone, never from the spec.
    """

    type: Literal["llm_as_judge"]
    criteria: str = Field(min_length=1, max_length=JUDGE_TEXT_CAP)
    model: str = Field(default="paragon-fast", min_length=1)
    input_from: str = "agent_output"
    rubric: JudgeRubric | None = None
    prompt_template: str | None = None
    """Replaces the whole prompt; `{criteria}`, `{input}` and `{rubric}` are substituted."""
    temperature: float = Field(default=0.0, ge=0, le=2)
    pass_threshold: float = Field(default=0.5, ge=0, le=1)
    template_key: str | None = None
    """Emitted by the SDK's preset judges; accepted, not used."""
    provider: Literal["openai", "anthropic"] | None = None
    """Default: `anthropic` for `claude*` models, else an OpenAI-compatible Chat Completions API."""

    @field_validator("input_from")
    @classmethod
    def _known_selector(cls, value: str) -> str:
        if not _JUDGE_INPUT.match(value):
            raise ValueError(
                f"input_from {value!r} is not a selector: use agent_output, stdout, workspace,"
                " file:<path>, <service>.last_request.body or <service>.last_request"
            )
        return value

    @property
    def input_service(self) -> str | None:
        """The http_mock service `input_from` reads, if it reads one."""
        match = _JUDGE_INPUT.match(self.input_from)
        return match.group("service") if match and not self.input_from.startswith("file:") else None


Check = Annotated[
    FileExistsCheck
    | FileAbsentCheck
    | FileContentCheck
    | CommandExitCheck
    | SqlCheck
    | CustomCheck
    | HttpMockAssertionsCheck
    | S3ObjectCheck
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


class Determinism(_Block):
    """What the reference calls "frozen clock, seeded RNG, static DNS": seeds always reach the agent
    (`KEYSTONE_SEED`, `PYTHONHASHSEED`); a fixed clock needs `faketime`, which Keystone adds to the
    agent image (Debian/Ubuntu bases)."""

    clock: datetime | None = None
    """The wall-clock time the agent sees, e.g. `2025-01-01T09:00:00Z` (naive times are UTC)."""
    clock_runs: bool = False
    """False: time stands still at `clock`. True: it starts at `clock` and runs."""


class DatasetScenarios(_Block):
    """`parallelism.dataset`: each record of a server's dataset is a scenario, its `input` fields (and
    `expected`) the task parameters. Resolved by the server when an experiment is created."""

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    version: int | None = Field(default=None, ge=1)
    """Default: the dataset's latest version when the experiment is created (pinned then)."""
    tags: list[str] = Field(default_factory=list)
    """Only the records carrying every one of these tags."""
    limit: int | None = Field(default=None, ge=1, le=MAX_SCENARIOS)
    """The first `limit` records only."""


class Parallelism(_Block):
    replicas: int = Field(default=1, ge=1, le=10_000)
    matrix: dict[str, list[str | int | float | bool]] = Field(default_factory=dict)
    dataset: DatasetScenarios | None = None
    concurrency: int | None = Field(default=None, ge=1)
    _planned: list[tuple[str, dict[str, Any]]] | None = PrivateAttr(default=None)
    """The scenarios a server resolved `dataset` to (never read from a spec file)."""

    @model_validator(mode="after")
    def _one_source_of_scenarios(self) -> Parallelism:
        if self.matrix and self.dataset is not None:
            raise ValueError(
                "`matrix` and `dataset` both set: scenarios come from one of them; remove `matrix` or "
                "`dataset`"
            )
        return self

    @property
    def planned_scenarios(self) -> list[tuple[str, dict[str, Any]]] | None:
        """The scenarios a server resolved `dataset` to; None before (and for a matrix)."""
        return None if self._planned is None else list(self._planned)

    def planned(self, cells: list[tuple[str, dict[str, Any]]], version: int) -> Parallelism:
        """This parallelism with `dataset` resolved to `cells`, from the dataset's `version`."""
        dataset = self.dataset.model_copy(update={"version": version}) if self.dataset else None
        copy = self.model_copy(update={"dataset": dataset})
        copy._planned = cells
        return copy

    @field_validator("matrix")
    @classmethod
    def _non_empty_axes(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for axis, values in value.items():
            if not values:
                raise ValueError(f"matrix axis {axis!r} has no values")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", axis):
                raise ValueError(f"matrix axis {axis!r} must be an identifier (it becomes an env var)")
        cells = math.prod(len(values) for values in value.values())
        if cells > MAX_SCENARIOS:
            raise ValueError(f"the matrix has {cells} cells (scenarios); the limit is {MAX_SCENARIOS}")
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
    fixtures: list[Fixture] = Field(default_factory=list, max_length=MAX_FIXTURES)
    services: list[Service] = Field(default_factory=list, max_length=MAX_SERVICES)
    secrets: list[Annotated[Secret, BeforeValidator(_secret_from_string)]] = Field(default_factory=list)
    network: Network = Field(default_factory=Network)
    audit: Audit = Field(default_factory=Audit)
    forbidden: Forbidden = Field(default_factory=Forbidden)
    invariants: dict[str, Invariant] = Field(min_length=1, max_length=MAX_INVARIANTS)
    scoring: Scoring = Field(default_factory=Scoring)
    parallelism: Parallelism = Field(default_factory=Parallelism)
    determinism: Determinism = Field(default_factory=Determinism)

    @field_validator("id")
    @classmethod
    def _kebab_id(cls, value: str) -> str:
        if len(value) > MAX_ID_LENGTH:
            raise ValueError(f"id has {len(value)} characters; the limit is {MAX_ID_LENGTH}")
        if not _KEBAB.match(value):
            raise ValueError(f"id {value!r} must be kebab-case, e.g. 'refund-agent'")
        return value
