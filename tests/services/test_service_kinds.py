"""Each kind of service builds the container the sandbox runs: image, ports, command, env, URL and the
readiness strategy, so the sandbox itself never needs to know which kind it is running."""

from __future__ import annotations

from polarity_keystone.sandbox import CommandSucceeds, LogLine, ServiceContainer, StaysUp
from polarity_keystone.services import http_mock, kind_of, postgres
from polarity_keystone.spec import Service


def test_postgres_waits_for_its_log_line_on_keystones_image_and_for_pg_isready_on_the_official_one() -> None:
    db = Service(name="db", image="postgres:16", env={"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "pw"})

    local = kind_of(db).container(db, "keystone-local/postgres:1", local_image=True)
    official = kind_of(db).container(db, "postgres:16")

    assert local == ServiceContainer(
        name="db",
        kind="postgres",
        image="keystone-local/postgres:1",
        readiness=LogLine(postgres.READY_MARKER),
        ports=(5432,),
        env={"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "pw"},
        url="postgres://app:pw@db:5432/app",
    )
    assert official.readiness == CommandSucceeds("pg_isready -q -h 127.0.0.1 -U app")


def test_the_specs_wait_for_wins_over_the_kinds_own_signal() -> None:
    cache = Service(name="cache", image="redis:7", wait_for="redis-cli ping")

    assert kind_of(cache).container(cache, "redis:7").readiness == CommandSucceeds("redis-cli ping")


def test_a_generic_service_must_stay_up_and_keeps_its_command_and_ports() -> None:
    api = Service(name="api", image="example/api:1", command="serve --port '8080'", ports=[8080, 9090])
    quiet = Service(name="quiet", image="example/worker:1", command=["run", "a b"])

    container = kind_of(api).container(api, "example/api:1")

    assert container.kind == "generic"
    assert container.readiness == StaysUp()
    assert container.command == ("serve", "--port", "8080")
    assert (container.ports, container.port, container.url) == ((8080, 9090), 8080, "api:8080")
    unknown = kind_of(quiet).container(quiet, "example/worker:1")
    assert (unknown.command, unknown.ports, unknown.port, unknown.url) == (("run", "a b"), (), None, "quiet")


def test_a_kinds_config_is_added_to_the_containers_env() -> None:
    mock = Service.model_validate(
        {"name": "pay", "type": "http_mock", "env": {"TZ": "UTC"}, "routes": [{"path": "/v1"}]}
    )

    container = kind_of(mock).container(mock, "keystone-local/http_mock:1", local_image=True)

    assert container.env["TZ"] == "UTC"
    assert container.env[http_mock.CONFIG_ENV] == http_mock.config_json(mock, 80)
    assert container.readiness == LogLine(http_mock.READY_MARKER)
