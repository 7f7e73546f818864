"""S3 (`type: s3`, or minio/localstack/s3mock/moto images): Keystone's local image runs moto in server
mode. The agent gets the endpoint and test credentials; fixtures and `s3_object` checks talk to the S3
API from inside the service's own container (python3 + boto3, which the local image has), so they need
no port on the host.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any

from ..sandbox import CommandSucceeds, LogLine, Readiness, Sandbox
from ..spec import Service
from ._base import ServiceKind, register_kind
from ._snapshots import ITEM_LIMIT, ServiceSnapshot

READY_MARKER = "Running on"
"""What moto's server (werkzeug) prints once it listens."""
PORT_ENV = "KEYSTONE_S3_PORT"
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""What the agent is given unless the service's env sets them (moto accepts any credentials)."""
LISTING_LIMIT = 20


class S3Error(Exception):
    """Raised when the S3 API inside the service container fails; carries its output for the evidence."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


@register_kind
class S3(ServiceKind):
    name = "s3"
    default_port = 9000
    local_image = "s3"

    def readiness(self, service: Service, local: bool) -> Readiness:
        if service.wait_for:
            return CommandSucceeds(service.wait_for)
        return LogLine(READY_MARKER)

    def url(self, service: Service) -> str:
        return f"http://{service.name}:{self.port(service)}"

    def container_env(self, service: Service) -> dict[str, str]:
        return {PORT_ENV: str(self.port(service))}

    def agent_env(self, service: Service) -> dict[str, str]:
        env = super().agent_env(service)
        env[f"{service.name.upper().replace('-', '_')}_URL"] = self.url(service)
        env["AWS_ENDPOINT_URL"] = self.url(service)
        env.update(credentials(service))
        return env

    def snapshot(self, sandbox: Sandbox, service: Service) -> ServiceSnapshot:
        """Every object as `bucket/key`, with its ETag and size."""
        return ServiceSnapshot(*inventory(sandbox, service, ITEM_LIMIT))


def credentials(service: Service) -> dict[str, str]:
    """The AWS credentials and region: the service's env where it sets them, else test values."""
    return {name: service.env.get(name, default) for name, default in TEST_CREDENTIALS.items()}


_SCRIPT = """\
import base64, json, sys
import boto3
from botocore.exceptions import ClientError
request = json.load(open(sys.argv[1])) if len(sys.argv) > 1 else json.loads(sys.stdin.read())
s3 = boto3.client("s3", endpoint_url=request["endpoint"], aws_access_key_id=request["key_id"],
                  aws_secret_access_key=request["secret"], region_name=request["region"])
op, bucket = request["op"], request.get("bucket")
def missing(error):
    return error.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchBucket", "404")
if op == "put":
    try:
        if request["region"] == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:  # outside us-east-1 S3 wants the region as the location constraint
            where = {"LocationConstraint": request["region"]}
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=where)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    for key, content in request["objects"].items():
        s3.put_object(Bucket=bucket, Key=key, Body=base64.b64decode(content))
    print(json.dumps({"put": len(request["objects"])}))
elif op == "get":
    try:
        body = s3.get_object(Bucket=bucket, Key=request["key"])["Body"].read()
        print(json.dumps({"content": base64.b64encode(body).decode()}))
    except ClientError as error:
        if not missing(error):
            raise
        print(json.dumps({"content": None}))
elif op == "inventory":
    objects, truncated = {}, False
    for entry in s3.list_buckets().get("Buckets", []):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=entry["Name"])
        for item in (item for page in pages for item in page.get("Contents", [])):
            if len(objects) >= request["limit"]:
                truncated = True
                break
            objects[f"{entry['Name']}/{item['Key']}"] = f"{item['ETag'].strip(chr(34))}:{item['Size']}"
    print(json.dumps({"objects": objects, "truncated": truncated}))
elif op == "list":
    try:
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=request["limit"])
    except ClientError as error:
        if not missing(error):
            raise
        print(json.dumps({"keys": None, "truncated": False}))
    else:
        keys = [item["Key"] for item in page.get("Contents", [])]
        print(json.dumps({"keys": keys, "truncated": bool(page.get("IsTruncated"))}))
"""

_INLINE_LIMIT = 64_000
"""Below this size a request travels on the exec's command line; above, as a file in the container."""


def _call(sandbox: Sandbox, service: Service, request: dict[str, Any]) -> dict[str, Any]:
    creds = credentials(service)
    port = service.ports[0] if service.ports else S3.default_port
    full = {
        "endpoint": f"http://127.0.0.1:{port}",
        "key_id": creds["AWS_ACCESS_KEY_ID"],
        "secret": creds["AWS_SECRET_ACCESS_KEY"],
        "region": creds["AWS_DEFAULT_REGION"],
        **request,
    }
    payload = json.dumps(full)
    if len(payload) < _INLINE_LIMIT:
        command = ["sh", "-c", 'printf "%s" "$KEYSTONE_S3_REQUEST" | exec python3 -c "$1"', "sh", _SCRIPT]
        result = sandbox.service_exec(
            service.name, command, timeout=300, env={"KEYSTONE_S3_REQUEST": payload}
        )
    else:
        path = f"/tmp/keystone-s3-{uuid.uuid4().hex}.json"
        sandbox.service_put_file(service.name, path, payload.encode())
        result = sandbox.service_exec(service.name, ["python3", "-c", _SCRIPT, path], timeout=300)
    lines = result.stdout.strip().splitlines()
    if result.exit_code != 0 or not lines:
        output = (result.stderr or result.stdout).strip()
        raise S3Error(f"S3 {request['op']} on service {service.name!r} failed", output[-4000:])
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


def put_objects(sandbox: Sandbox, service: Service, bucket: str, objects: Mapping[str, bytes]) -> int:
    """Create `bucket` (if it does not exist) and store `objects` (key -> content) in it."""
    encoded = {key: base64.b64encode(content).decode() for key, content in objects.items()}
    answer = _call(sandbox, service, {"op": "put", "bucket": bucket, "objects": encoded})
    return int(answer["put"])


def create_bucket(sandbox: Sandbox, service: Service, bucket: str) -> None:
    put_objects(sandbox, service, bucket, {})


def get_object(sandbox: Sandbox, service: Service, bucket: str, key: str) -> bytes | None:
    """The object's content, or None when the bucket or the key does not exist."""
    content = _call(sandbox, service, {"op": "get", "bucket": bucket, "key": key})["content"]
    return None if content is None else base64.b64decode(content)


def list_keys(
    sandbox: Sandbox, service: Service, bucket: str, limit: int = LISTING_LIMIT
) -> tuple[list[str], bool] | None:
    """(the first `limit` keys in order, whether there are more), or None when the bucket does not exist."""
    answer = _call(sandbox, service, {"op": "list", "bucket": bucket, "limit": limit})
    if answer["keys"] is None:
        return None
    return [str(key) for key in answer["keys"]], bool(answer["truncated"])


def inventory(sandbox: Sandbox, service: Service, limit: int) -> tuple[dict[str, str], bool]:
    """({"bucket/key": "etag:size"} for every object, whether more than `limit` exist)."""
    answer = _call(sandbox, service, {"op": "inventory", "limit": limit})
    return {str(key): str(value) for key, value in answer["objects"].items()}, bool(answer["truncated"])
