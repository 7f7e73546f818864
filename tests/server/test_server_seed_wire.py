"""The REST API's runs and sandboxes on the wire: `seed_` seeds in and out, `POST /v1/sandboxes` with an
image and services (no spec), the sandbox `status`, a run's `sandbox_id` while it runs and its
`trajectory_url`."""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest

from polarity_keystone.server._image_spec import SERVICE_DECLARATIONS, image_spec
from polarity_keystone.server._models import ImageService
from polarity_keystone.server._seeds import MAX_SEED, parse_seed, seed_text
from polarity_keystone.services import KINDS
from tests.server.server_api import Api, MakeApi, spec_yaml, unreachable_engine, wait_until_finished
from tests.stores import ENGINE_ON_ONE_STORE
from tests.waiting import wait_until

WIRE_SEED = re.compile(r"seed_[0-9a-f]{16}")


def test_a_seed_is_written_one_way_and_read_in_every_form_a_client_holds() -> None:
    assert seed_text(0xE3A91B2F) == "seed_00000000e3a91b2f"
    assert seed_text(MAX_SEED) == "seed_7fffffffffffffff"
    assert [parse_seed(v) for v in ("seed_e3a91b2f", "seed_00000000E3A91B2F", 3819510575, "3819510575")] == [
        0xE3A91B2F
    ] * 4
    assert parse_seed(seed_text(MAX_SEED)) == MAX_SEED
    for bad in ("seed_", "seed_8000000000000000", "seed_00000000000000001", "SEED_1", "0x1f", "-1", "", True):
        with pytest.raises(ValueError, match="a seed is `seed_`"):
            parse_seed(bad)
    with pytest.raises(ValueError):
        parse_seed(MAX_SEED + 1)


def test_a_run_takes_and_reports_seed_strings_and_points_at_its_trajectory(make_api: MakeApi) -> None:
    api = make_api(backend_factory=unreachable_engine)
    api.upload(spec_yaml())

    def run(seed: Any) -> Any:
        return api.client.post("/v1/runs", json={"spec_id": "hello", "seed": seed})

    accepted = run("seed_e3a91b2f").json()
    refused = run("seed_e3a91b2f0000000000")
    suite = api.client.post("/v1/replicas", json={"spec_id": "hello", "n_replicas": 2, "seed": "seed_9"})
    wait_until_finished(api, accepted["id"])
    trajectory = api.client.get(accepted["trajectory_url"].removeprefix(api.base_url))

    assert accepted["seed"] == "seed_00000000e3a91b2f"
    assert run(3819510575).json()["seed"] == run("3819510575").json()["seed"] == accepted["seed"]
    assert refused.status_code == 400 and refused.json()["message"].startswith("seed: ")
    assert suite.status_code == 202 and all(WIRE_SEED.fullmatch(seed) for seed in suite.json()["seeds"])
    assert accepted["trajectory_url"] == f"{api.base_url}/v1/runs/{accepted['id']}/trajectory"
    assert trajectory.status_code == 200
    assert trajectory.json() == {
        "run_id": accepted["id"],
        "sandbox_id": "",
        "events": [],
        "metrics": trajectory.json()["metrics"],
        "audit": [],
    }
    assert api.client.get(f"/v1/runs/{suite.json()['id']}/trajectory").status_code == 404
    assert api.client.get("/v1/runs/run_missing/trajectory").status_code == 404


def test_a_sandbox_body_names_a_spec_or_an_image_within_bounds(api: Api) -> None:
    def refusal(body: dict[str, Any]) -> tuple[int, str]:
        response = api.client.post("/v1/sandboxes", json=body)
        return response.status_code, response.json()["message"]

    assert refusal({"services": ["redis"]})[1].endswith(
        "give either `spec_id` (a sandbox from a spec) or `image` (and `services`)"
    )
    assert "give either" in refusal({"spec_id": "hello", "image": "debian:bookworm-slim"})[1]
    assert "`services` go with `image`" in refusal({"spec_id": "hello", "services": ["redis"]})[1]
    assert "`spec_version` goes with" in refusal({"image": "debian:bookworm-slim", "spec_version": 1})[1]
    assert "once" in refusal({"image": "debian:bookworm-slim", "services": ["redis", "redis"]})[1]
    assert refusal({"image": "debian:bookworm-slim", "services": ["mysql"]})[1].startswith("services.0: ")
    assert refusal({"image": "x" * 256})[1].startswith("image: ")
    assert refusal({"image": "debian; rm -rf /"})[1].startswith("image: ")
    assert refusal({"image": "debian:bookworm-slim", "seed": "seed_zz"})[1].startswith("seed: ")
    assert refusal({"image": "debian:bookworm-slim", "services": ["redis"] * 9})[0] == 400


def test_every_service_kind_a_sandbox_may_ask_for_is_a_registered_kind_declared_once() -> None:
    kinds = get_args(ImageService)
    loaded = image_spec("debian:bookworm-slim", kinds)

    assert set(SERVICE_DECLARATIONS) == set(kinds) and set(kinds) <= set(KINDS.names())
    assert [s.name for s in loaded.spec.services] == ["postgres", "redis", "s3", "http-mock"]
    assert loaded.spec.base == "debian:bookworm-slim"


@pytest.mark.docker
@ENGINE_ON_ONE_STORE
def test_a_sandbox_from_an_image_and_redis_answers_commands_then_stops(make_api: MakeApi) -> None:
    api = make_api()
    created = api.client.post(
        "/v1/sandboxes",
        json={"image": "debian:bookworm-slim", "services": ["redis"], "seed": "seed_e3a91b2f"},
    )
    assert created.status_code == 201, created.text
    sandbox = created.json()
    ping = api.client.post(
        f"/v1/sandboxes/{sandbox['id']}/commands",
        json={"command": "bash -c 'exec 3<>/dev/tcp/redis/6379; printf \"PING\\r\\n\" >&3; head -c 5 <&3'"},
    )
    ran = api.client.get(f"/v1/sandboxes/{sandbox['id']}").json()
    deleted = api.client.delete(f"/v1/sandboxes/{sandbox['id']}")
    gone = api.client.get(f"/v1/sandboxes/{sandbox['id']}").json()

    assert (sandbox["status"], sandbox["state"], sandbox["spec_id"]) == ("ready", "ready", "")
    assert sandbox["seed"] == "seed_00000000e3a91b2f" and set(sandbox["services"]) == {"redis"}
    assert ping.json()["stdout"] == "+PONG", ping.text
    assert ran["status"] == "running"
    assert deleted.status_code == 204
    assert (gone["status"], gone["state"]) == ("stopped", "destroyed")


@pytest.mark.docker
@ENGINE_ON_ONE_STORE
def test_a_run_names_its_sandbox_while_it_runs_and_its_trajectory_holds_the_reports(
    make_api: MakeApi,
) -> None:
    api = make_api()
    api.upload(spec_yaml(command="sleep 4"))
    run_id = api.client.post("/v1/runs", json={"spec_id": "hello"}).json()["id"]

    def running() -> dict[str, Any]:
        run: dict[str, Any] = api.client.get(f"/v1/runs/{run_id}").json()
        return run if run["sandbox_id"] else {}

    during = wait_until(running, 60, f"run {run_id} names its sandbox")
    reported = api.client.post(
        f"/v1/sandboxes/{during['sandbox_id']}/trace",
        json={"events": [{"event_type": "tool_call", "tool": "lookup", "duration_ms": 12}]},
    )
    wait_until_finished(api, run_id)
    after = api.client.get(f"/v1/runs/{run_id}").json()
    trajectory = api.client.get(f"/v1/runs/{run_id}/trajectory").json()

    assert during["status"] == "running" and during["sandbox_id"].startswith("sb-")
    assert reported.json() == {"accepted": 1}
    assert (after["status"], after["sandbox_id"]) == ("passed", during["sandbox_id"]), after["error"]
    assert trajectory["sandbox_id"] == during["sandbox_id"]
    assert [e["tool"] for e in trajectory["events"]] == ["lookup"]
    assert trajectory["metrics"]["total_tool_calls"] == 1
