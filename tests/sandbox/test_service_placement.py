"""Services share the agent's network namespace when their ports allow it (fast boot) and fall back to
their own endpoint on the sandbox network otherwise; either way everything reaches everything by name."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from polarity_keystone.sandbox import DockerBackend, SandboxPlan, ServiceContainer, split_services
from polarity_keystone.services import postgres
from polarity_keystone.spec import Service

MakePlan = Callable[[Service], ServiceContainer]


def _names(plans: list[ServiceContainer]) -> list[str]:
    return [plan.name for plan in plans]


def test_known_distinct_ports_join_the_pod_and_the_rest_are_bridged(service_plan: MakePlan) -> None:
    plans = [
        service_plan(Service(name="db", image="postgres:16")),
        service_plan(Service(name="cache", image="redis:7")),
        service_plan(Service(name="db2", image="postgres:16")),
        service_plan(Service(name="api", image="example/api:1", ports=[8080])),
        service_plan(Service(name="mystery", image="example/other:1")),
        service_plan(Service(name="api2", image="example/api:1", ports=[8080, 9090])),
    ]

    pod, bridged = split_services(plans)

    assert _names(pod) == ["db", "cache", "api"]
    assert _names(bridged) == ["db2", "mystery", "api2"]


@pytest.mark.docker
def test_pod_and_bridged_services_reach_each_other_by_name(
    backend: DockerBackend, base_image: str, service_plan: MakePlan
) -> None:
    db, db2 = Service(name="db", image="postgres:16"), Service(name="db2", image="postgres:16")
    web = Service(name="web", image=base_image, command="python3 -m http.server 8000")
    plans = [service_plan(db), service_plan(db2), service_plan(web)]
    plan = SandboxPlan(
        spec_id="placement", run_id=f"test-{uuid.uuid4().hex[:8]}", image=base_image, services=plans
    )
    sandbox = backend.create(plan)
    try:
        postgres.run_sql(sandbox, db, "CREATE TABLE here (id int)")
        postgres.run_sql(sandbox, db2, "CREATE TABLE there (id int)")
        # Two Postgres on the same port: two separate databases, both reachable from the agent by name.
        assert (
            sandbox.exec("psql -h db -U postgres -tAc \"select to_regclass('here') is not null\"").stdout
            == "t\n"
        )
        assert (
            sandbox.exec("psql -h db2 -U postgres -tAc \"select to_regclass('there') is not null\"").stdout
            == "t\n"
        )
        fetch = "import urllib.request as u; print(u.urlopen('http://web:8000/', timeout=5).status)"
        for _ in range(50):  # http.server has no readiness signal; give it a moment
            reply = sandbox.exec(["python3", "-c", fetch], timeout=10)
            if reply.exit_code == 0:
                break
        assert reply.stdout.strip() == "200", reply.stderr
        # A bridged service reaches a service in the agent's namespace by its name too.
        across = sandbox.service_exec("web", ["psql", "-h", "db", "-U", "postgres", "-tAc", "select 41 + 1"])
        assert across.stdout.strip() == "42", across.stderr
    finally:
        sandbox.destroy()
