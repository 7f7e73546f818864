"""Every shipped example on the images a hosted runner really pulls: there `ubuntu:24.04` and
`debian:bookworm` have no python3, so a spec must install what its agent runs. Here a python-less minimal
image (debian:bookworm-slim) answers to those refs, never Keystone's python-bearing stand-in; services
keep their local stand-ins (their readiness is the stand-in's, not the official image's)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from polarity_keystone.engine import prepare
from polarity_keystone.sandbox import DockerBackend, ImageError, ImageResolver
from polarity_keystone.spec import load_spec
from tests.examples.shipped_examples import EXAMPLES, RunSpec

pytestmark = pytest.mark.docker

MINIMAL = "debian:bookworm-slim"
SPECS = sorted(EXAMPLES.glob("*/*.yaml"))
EXPECTED = {"sloppy-agent": "fail", "llm-agent-reckless": "fail"}
"""Examples that fail by design (sloppy-agent and llm-agent-reckless break a forbidden rule); the others
pass."""
SEED = 7
"""A seed on which flaky-agent answers right."""


@pytest.fixture(scope="module")
def real_images(backend: DockerBackend) -> ImageResolver:
    answering = {"ubuntu:24.04": MINIMAL, "debian:bookworm": MINIMAL}
    return ImageResolver(backend.client, allow_pull=False, answering=answering)


def test_the_minimal_image_has_no_python(backend: DockerBackend) -> None:
    """What makes this test mean something: without setup.packages, the agents could not start."""
    done = backend.client.containers.run(
        MINIMAL, ["sh", "-c", "command -v python3 || echo none"], remove=True
    )
    assert done.decode().strip() == "none"


def test_an_answering_image_that_is_absent_is_an_error_never_a_stand_in(backend: DockerBackend) -> None:
    resolver = ImageResolver(
        backend.client, allow_pull=False, answering={"ubuntu:24.04": "keystone-absent:1"}
    )
    with pytest.raises(ImageError, match=re.escape("'keystone-absent:1', which answers to 'ubuntu:24.04'")):
        resolver.resolve("ubuntu:24.04")


@pytest.mark.parametrize("spec", SPECS, ids=[path.relative_to(EXAMPLES).as_posix() for path in SPECS])
def test_the_example_runs_on_a_python_less_base(spec: Path, real_images: ImageResolver, run: RunSpec) -> None:
    prepared = prepare(load_spec(spec), real_images)
    base = real_images.resolve(prepared.spec.base)
    assert (base.ref, base.note) == (MINIMAL, "")  # the agent runs on the minimal image, not a stand-in
    results = run(prepared, replicas=1, seed=SEED)
    (scenario,) = results.scenarios
    (replica,) = scenario.replicas
    assert (replica.exit_code, replica.error) == (0, None), (replica.error, replica.agent_stderr)
    assert scenario.status == EXPECTED.get(results.spec_id, "pass"), replica.reasons
