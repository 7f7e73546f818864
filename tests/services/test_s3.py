"""The S3 service in a real sandbox: Keystone's local image (moto in server mode) stands in for
minio/localstack/s3mock/moto, boots on port 9000 (or `ports[0]`), the agent reaches it by name with the
S3 HTTP API, an `s3` fixture seeds a bucket, and the host-side helpers read and write objects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from polarity_keystone.engine._fixtures import prepare_fixture
from polarity_keystone.sandbox import (
    DockerBackend,
    DockerSandbox,
    ImageResolver,
    LogLine,
    SandboxPlan,
    ServiceContainer,
)
from polarity_keystone.sandbox._images import _FALLBACKS
from polarity_keystone.services import S3, kind_of, s3
from polarity_keystone.spec import LoadedSpec, S3Fixture, Service, Setup, load_spec

pytestmark = pytest.mark.docker

STORE = Service.model_validate({"name": "store", "image": "minio/minio:latest"})
OTHER = Service.model_validate(
    {"name": "other-s3", "type": "s3", "ports": [9100], "env": {"AWS_DEFAULT_REGION": "eu-west-1"}}
)

AGENT = """\
import os, sys
import boto3
client = boto3.client("s3", endpoint_url=os.environ[sys.argv[1]])
op, bucket = sys.argv[2], sys.argv[3]
if op == "list":
    print(" ".join(item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])))
elif op == "get":
    print(client.get_object(Bucket=bucket, Key=sys.argv[4])["Body"].read().decode())
elif op == "put":
    client.put_object(Bucket=bucket, Key=sys.argv[4], Body=sys.argv[5].encode())
elif op == "create":  # outside us-east-1 S3 wants the region as the location constraint
    region = os.environ["AWS_DEFAULT_REGION"]
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
"""


def _loaded_from(spec_dir: Path) -> LoadedSpec:
    """A spec file in `spec_dir`, which is where the fixture's local `source` resolves."""
    (spec_dir / "s3.yaml").write_text(
        "version: 1\nid: s3\nbase: debian:bookworm-slim\ntask: {prompt: x}\n"
        "agent: {type: cli, command: 'true'}\n"
        "invariants: {ok: {check: {type: command_exit, command: 'true'}}}\n"
    )
    return load_spec(spec_dir / "s3.yaml")


def plan_of(resolver: ImageResolver, service: Service) -> ServiceContainer:
    return kind_of(service).container(service, resolver.local("s3").ref, local_image=True)


@pytest.fixture(scope="module")
def sandbox(
    backend: DockerBackend, resolver: ImageResolver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerSandbox]:
    spec_dir = tmp_path_factory.mktemp("s3-spec")
    (spec_dir / "seed" / "daily").mkdir(parents=True)
    (spec_dir / "seed" / "daily" / "orders.csv").write_text("id,amount\n1,10\n")
    (spec_dir / "seed" / "notes.txt").write_text("hello")
    fixture = S3Fixture.model_validate(
        {
            "type": "s3",
            "service": "store",
            "bucket": "seeded",
            "objects": {"inline.txt": "inline content"},
            "source": "seed",
            "prefix": "in/",
        }
    )
    plan = SandboxPlan(
        spec_id="s3",
        run_id=f"test-{uuid.uuid4().hex[:10]}",
        image=resolver.bake_setup(resolver.local("base"), Setup(packages=["python3-boto3"])).ref,
        services=[plan_of(resolver, STORE), plan_of(resolver, OTHER)],
        fixtures=[prepare_fixture(_loaded_from(spec_dir), 0, fixture).step({"store": STORE})],
    )
    sandbox = backend.create(plan)
    try:
        sandbox.write_file("/keystone/agent.py", AGENT.encode())
        yield sandbox
    finally:
        sandbox.destroy()


def agent(sandbox: DockerSandbox, service: Service, *args: str) -> str:
    """Run boto3 in the agent container with the env Keystone gives the agent for `service`."""
    env = kind_of(service).agent_env(service)
    url = f"{service.name.upper().replace('-', '_')}_URL"
    result = sandbox.exec(["python3", "/keystone/agent.py", url, *args], timeout=60, env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


# --- the kind ------------------------------------------------------------------------------------


def test_s3_images_and_type_run_the_s3_kind_on_port_9000() -> None:
    for image in ("minio/minio", "localstack/localstack:3", "adobe/s3mock:3.9.1", "motoserver/moto"):
        assert isinstance(kind_of(Service(name="x", image=image)), S3), image
        assert _FALLBACKS[image.split(":")[0]] == "s3"
    kind = kind_of(STORE)
    assert kind.port(STORE) == 9000
    assert kind.port(OTHER) == 9100
    assert kind.readiness(STORE, local=True) == LogLine(s3.READY_MARKER)
    assert kind.container_env(OTHER) == {s3.PORT_ENV: "9100"}
    container = kind.container(OTHER, "keystone-local/s3", local_image=True)
    assert container.ports == (9100,)
    assert container.env == {"AWS_DEFAULT_REGION": "eu-west-1", s3.PORT_ENV: "9100"}
    assert container.url == "http://other-s3:9100"


def test_the_agent_gets_the_endpoint_and_test_credentials_unless_the_service_sets_them() -> None:
    assert kind_of(STORE).agent_env(STORE) == {
        "STORE_HOST": "store",
        "STORE_PORT": "9000",
        "STORE_URL": "http://store:9000",
        "AWS_ENDPOINT_URL": "http://store:9000",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env = kind_of(OTHER).agent_env(OTHER)
    assert env["OTHER_S3_URL"] == env["AWS_ENDPOINT_URL"] == "http://other-s3:9100"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"


# --- in a sandbox --------------------------------------------------------------------------------


def test_the_fixture_seeds_the_bucket_from_objects_and_a_directory(sandbox: DockerSandbox) -> None:
    listing = s3.list_keys(sandbox, STORE, "seeded")
    assert listing == (["in/daily/orders.csv", "in/notes.txt", "inline.txt"], False)
    assert s3.get_object(sandbox, STORE, "seeded", "in/daily/orders.csv") == b"id,amount\n1,10\n"
    assert s3.get_object(sandbox, STORE, "seeded", "inline.txt") == b"inline content"


def test_the_agent_reaches_the_service_by_name_with_boto3(sandbox: DockerSandbox) -> None:
    assert agent(sandbox, STORE, "list", "seeded") == "in/daily/orders.csv in/notes.txt inline.txt"
    assert agent(sandbox, STORE, "get", "seeded", "in/notes.txt") == "hello"
    agent(sandbox, STORE, "put", "seeded", "agent/out.txt", "from the agent")
    assert s3.get_object(sandbox, STORE, "seeded", "agent/out.txt") == b"from the agent"


def test_a_service_on_another_port_is_reached_there(sandbox: DockerSandbox) -> None:
    agent(sandbox, OTHER, "create", "made-by-agent")
    assert s3.list_keys(sandbox, OTHER, "made-by-agent") == ([], False)
    assert s3.list_keys(sandbox, STORE, "made-by-agent") is None


def test_helpers_put_get_list_and_report_missing_things(sandbox: DockerSandbox) -> None:
    objects = {f"k{index:02}": str(index).encode() for index in range(25)}
    assert s3.put_objects(sandbox, OTHER, "many", objects) == 25
    s3.create_bucket(sandbox, OTHER, "many")  # idempotent
    keys, more = s3.list_keys(sandbox, OTHER, "many", limit=20) or ([], False)
    assert keys == sorted(objects)[:20]
    assert more is True
    assert s3.get_object(sandbox, OTHER, "many", "absent") is None
    assert s3.get_object(sandbox, OTHER, "no-such-bucket", "k00") is None
    assert s3.list_keys(sandbox, OTHER, "no-such-bucket") is None


def test_a_large_upload_travels_as_a_file(sandbox: DockerSandbox) -> None:
    big = bytes(range(256)) * 1024
    s3.put_objects(sandbox, STORE, "big", {"blob.bin": big})
    assert s3.get_object(sandbox, STORE, "big", "blob.bin") == big


def test_a_failing_call_raises_with_the_output(sandbox: DockerSandbox, tmp_path: Path) -> None:
    with pytest.raises(s3.S3Error) as raised:
        s3.put_objects(sandbox, STORE, "x", {"x": b"y"})
    assert "InvalidBucketName" in raised.value.output
