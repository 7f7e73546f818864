"""The sandbox the check and rule tests share per module: Keystone's base image, the given services on
their local images, `seed` applied at boot."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from polarity_keystone.sandbox import DockerBackend, DockerSandbox, FixtureStep, ImageResolver, SandboxPlan
from polarity_keystone.services import kind_of
from polarity_keystone.spec import Service


@contextmanager
def booted(
    backend: DockerBackend,
    resolver: ImageResolver,
    spec_id: str,
    seed: Callable[[DockerSandbox], None],
    services: Sequence[Service] = (),
) -> Iterator[DockerSandbox]:
    containers = []
    for service in services:
        kind = kind_of(service)
        assert kind.local_image is not None, service
        containers.append(kind.container(service, resolver.local(kind.local_image).ref, local_image=True))
    plan = SandboxPlan(
        spec_id=spec_id,
        run_id=f"test-{uuid.uuid4().hex[:10]}",
        image=resolver.local("base").ref,
        services=containers,
        fixtures=[FixtureStep(seed, "seed")],  # type: ignore[arg-type]
    )
    sandbox = backend.create(plan)
    try:
        yield sandbox
    finally:
        sandbox.destroy()
