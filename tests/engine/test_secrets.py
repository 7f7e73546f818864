"""Secrets: resolved on the caller's machine from their source, handed to the agent and to services
through `{{ secrets.X }}`, never shown in any output, and stable per seed when generated."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, replay, run_experiment
from polarity_keystone.engine._prepare import plan_replica
from polarity_keystone.sandbox import DockerBackend, Sandbox
from polarity_keystone.secrets import Redactor, SecretError, generated, interpolate, resolve_fixed
from polarity_keystone.spec import Secret

pytestmark = pytest.mark.docker

PrepareFrom = Callable[..., PreparedSpec]

STATIC = "s3cr3t-static-value"
FROM_ENV = "env-sourced-token-42"


def resolve_all(declared: list[Secret], seed: int) -> dict[str, str]:
    """What a replica with `seed` gets: the fixed secrets and the ones generated from its seed."""
    return {**resolve_fixed(declared), **generated(declared, seed)}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- resolving and interpolating ------------------------------------------------------------------


def test_static_env_and_generated_sources_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_TEST_TOKEN", FROM_ENV)
    monkeypatch.setenv("PLAIN_TOKEN", "plain-value")
    monkeypatch.delenv("KS_TEST_MISSING", raising=False)
    declared = [
        Secret.model_validate({"name": "STATIC", "from": f"static://{STATIC}"}),
        Secret(name="RENAMED", source="env:KS_TEST_TOKEN"),
        Secret(name="PLAIN_TOKEN"),
        Secret(name="GEN", **{"from": "generated"}),
        Secret(name="ABSENT", source="env:KS_TEST_MISSING"),
    ]

    values = resolve_all(declared, seed=7)

    assert values["STATIC"] == STATIC
    assert values["RENAMED"] == FROM_ENV
    assert values["PLAIN_TOKEN"] == "plain-value"
    assert len(values["GEN"]) >= 16
    assert "ABSENT" not in values  # an unset env var gives no value (and no empty string)


def test_generated_secrets_are_the_same_for_the_same_seed() -> None:
    declared = [Secret(name="GEN", **{"from": "generated"}), Secret(name="OTHER", **{"from": "generated"})]

    first, again, other_seed = (resolve_all(declared, seed) for seed in (5, 5, 6))

    assert first == again
    assert first["GEN"] != other_seed["GEN"]
    assert first["GEN"] != first["OTHER"]


def test_file_and_command_sources(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "token.txt"
    secret_file.write_text("from-a-file\n")

    values = resolve_all(
        [
            Secret(name="F", source=f"file:{secret_file}"),
            Secret(name="C", source="command:echo from-a-command"),
        ],
        seed=1,
    )

    assert values == {"F": "from-a-file", "C": "from-a-command"}
    with pytest.raises(SecretError, match="BROKEN"):
        resolve_all([Secret(name="BROKEN", source="command:exit 3")], seed=1)
    with pytest.raises(SecretError, match="NOFILE"):
        resolve_all([Secret(name="NOFILE", source=f"file:{tmp_path / 'missing'}")], seed=1)


def test_interpolation_replaces_declared_secrets() -> None:
    assert interpolate("Bearer {{ secrets.API_KEY }}!", {"API_KEY": "k-123"}) == "Bearer k-123!"
    assert interpolate("{{secrets.A}}-{{ secrets.B }}", {"A": "1", "B": "2"}) == "1-2"
    assert interpolate("no templates here", {}) == "no templates here"


def test_an_undeclared_secret_is_an_error_naming_it() -> None:
    with pytest.raises(SecretError, match="UNDECLARED"):
        interpolate("token={{ secrets.UNDECLARED }}", {"DECLARED": "value"})


def test_redaction_hides_every_value_longest_first() -> None:
    redact = Redactor({"A": "abcd", "B": "abcdefgh"})

    assert redact("x abcdefgh y abcd z") == "x *** y *** z"


# --- in a sandbox ---------------------------------------------------------------------------------

SECRETS_SPEC = f"""
version: 1
id: secret-probe
base: "ubuntu:24.04"
task: {{prompt: "use the secrets"}}
agent:
  type: cli
  path: agent
  command: sh /opt/agent/probe.sh
  env:
    AUTH_HEADER: "Bearer {{{{ secrets.ENV_TOKEN }}}}"
secrets:
  - name: STATIC_TOKEN
    from: "static://{STATIC}"
  - name: ENV_TOKEN
    source: env:KS_TEST_ENV_TOKEN
  - name: DB_PASSWORD
    from: generated
services:
  - name: db
    image: postgres:16
    env:
      POSTGRES_PASSWORD: "{{{{ secrets.DB_PASSWORD }}}}"
      API_TOKEN: "{{{{ secrets.STATIC_TOKEN }}}}"
invariants:
  ran:
    weight: 1
    check: {{type: command_exit, command: "true"}}
  leaky_check:
    weight: 0
    check: {{type: command_exit, command: "echo checked {STATIC}; exit 1"}}
"""

PROBE = """\
for name in STATIC_TOKEN ENV_TOKEN AUTH_HEADER; do
  printf '%s=%s\\n' "$name" "$(printenv "$name")"
  printf '%s_sha=%s\\n' "$name" "$(printenv "$name" | tr -d '\\n' | sha256sum | cut -d' ' -f1)"
done
echo "stderr sees $STATIC_TOKEN" >&2
"""


def test_secrets_reach_agent_and_services_and_are_redacted(
    prepared_from: PrepareFrom, backend: DockerBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KS_TEST_ENV_TOKEN", FROM_ENV)
    prepared = prepared_from(SECRETS_SPEC, {"agent/probe.sh": PROBE})
    service_env: dict[str, str] = {}

    def look_inside(sandbox: Sandbox) -> None:
        for name in ("POSTGRES_PASSWORD", "API_TOKEN"):
            service_env[name] = sandbox.service_exec("db", ["printenv", name]).stdout.strip()

    result = replay(prepared, backend, seed=99, parameters={}, fingerprint=None, on_sandbox=look_inside)

    assert result.status == "pass", result.error or result.reasons
    seen = dict(line.split("=", 1) for line in result.agent_output.splitlines())
    # The agent got the real values ...
    assert seen["STATIC_TOKEN_sha"] == _sha(STATIC)
    assert seen["ENV_TOKEN_sha"] == _sha(FROM_ENV)
    assert seen["AUTH_HEADER_sha"] == _sha(f"Bearer {FROM_ENV}")
    # ... but every output shows them as ***.
    assert seen["STATIC_TOKEN"] == "***"
    assert seen["ENV_TOKEN"] == "***"
    assert seen["AUTH_HEADER"] == "Bearer ***"
    assert result.agent_stderr.strip() == "stderr sees ***"
    dumped = result.model_dump_json()
    assert STATIC not in dumped
    assert FROM_ENV not in dumped
    leaky = next(i for i in result.invariants if i.name == "leaky_check")
    assert "checked ***" in leaky.message
    # The services got them through {{ secrets.X }}.
    assert service_env["API_TOKEN"] == STATIC
    assert service_env["POSTGRES_PASSWORD"] == resolve_all(prepared.spec.secrets, 99)["DB_PASSWORD"]


def test_service_urls_given_to_the_agent_carry_the_resolved_secret(
    prepared_from: PrepareFrom, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DB_URL is built from the service env: with `POSTGRES_PASSWORD: "{{ secrets.X }}"` it must hold
    the password itself, not the template text (which is not even a valid URL)."""
    monkeypatch.setenv("KS_TEST_ENV_TOKEN", FROM_ENV)
    prepared = prepared_from(SECRETS_SPEC, {"agent/probe.sh": PROBE})

    plan = plan_replica(prepared, run_id="r", scenario_id="secret-probe", replica=0, seed=99, parameters={})

    password = resolve_all(prepared.spec.secrets, 99)["DB_PASSWORD"]
    assert plan.agent_env["DB_URL"] == f"postgres://postgres:{password}@db:5432/postgres"


GENERATED_SPEC = """
version: 1
id: generated
base: "ubuntu:24.04"
task: {prompt: "show a digest of the generated secret"}
agent:
  type: cli
  command: 'printenv GEN_TOKEN | tr -d "\\n" | sha256sum | cut -d" " -f1'
secrets:
  - name: GEN_TOKEN
    from: generated
invariants:
  ok: {check: {type: command_exit, command: "true"}}
"""


def test_generated_secrets_follow_the_replica_seed(
    prepared_from: PrepareFrom, backend: DockerBackend
) -> None:
    prepared = prepared_from(GENERATED_SPEC)

    results = run_experiment(prepared, backend, RunOptions(replicas=2, concurrency=2, seed=3))
    first, second = results.scenarios[0].replicas
    replayed = replay(prepared, backend, seed=first.seed, replica=0, parameters={}, fingerprint=None)

    assert first.agent_output.strip() == _sha(resolve_all(prepared.spec.secrets, first.seed)["GEN_TOKEN"])
    assert first.agent_output != second.agent_output
    assert replayed.agent_output == first.agent_output


UNDECLARED_SPEC = """
version: 1
id: undeclared
base: "ubuntu:24.04"
task: {prompt: "never runs"}
agent:
  type: cli
  command: "true"
  env:
    TOKEN: "{{ secrets.UNDECLARED }}"
invariants:
  ok: {check: {type: command_exit, command: "true"}}
"""


def test_an_undeclared_secret_in_a_spec_is_refused_before_any_sandbox(prepared_from: PrepareFrom) -> None:
    with pytest.raises(SecretError, match="UNDECLARED"):
        prepared_from(UNDECLARED_SPEC)


def test_a_declared_secret_without_a_value_is_an_error_when_used(
    prepared_from: PrepareFrom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KS_TEST_ENV_TOKEN", raising=False)

    with pytest.raises(SecretError, match="ENV_TOKEN"):
        prepared_from(SECRETS_SPEC, {"agent/probe.sh": PROBE})
