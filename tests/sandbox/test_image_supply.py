"""Keystone's own images come from the engine, else from the release of this version when it was built
from the same content, else from a build that prints a progress line before and after. No registry
answers here, so a pull really fails; the probe images are tiny (a label on Keystone's local base
image) and build in about a second."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from polarity_keystone import __version__
from polarity_keystone.sandbox import ImageResolver
from polarity_keystone.sandbox import _images as images

pytestmark = pytest.mark.docker


class Probe:
    """A one-line image context `name` under `dockerfiles`, and the images the test made of it."""

    def __init__(self, client: docker.DockerClient, dockerfiles: Path, base: str) -> None:
        self.client = client
        self.dockerfiles = dockerfiles
        self.base = base
        self.name = f"supply-probe-{uuid.uuid4().hex[:8]}"
        (dockerfiles / self.name).mkdir()
        (dockerfiles / self.name / "Dockerfile").write_text(f"FROM {base}\nLABEL probe={self.name}\n")
        self.lines: list[str] = []

    def resolver(self) -> ImageResolver:
        return ImageResolver(self.client, progress=self.lines.append, dockerfiles=self.dockerfiles)

    @property
    def content(self) -> str:
        return images._hash_tree(images._local_context(self.name, self.dockerfiles))[:16]

    def publish_locally(self, content: str) -> str:
        """An image under the released name, as a registry's pull would leave it; returns its id."""
        context = self.dockerfiles / f"{self.name}-release"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {self.base}\nLABEL probe={self.name}-release\n")
        labels = {images.CONTENT_LABEL: content, images.VERSION_LABEL: __version__}
        image, _ = self.client.images.build(
            path=str(context), tag=images.published_name(self.name), labels=labels
        )
        return str(image.id)

    def remove(self) -> None:
        for ref in (images.published_name(self.name), f"{images.LOCAL_REPO}/{self.name}:{self.content}"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                self.client.images.remove(ref, force=True)


@pytest.fixture
def probe(resolver: ImageResolver, tmp_path: Path) -> Iterator[Probe]:
    made = Probe(resolver.client, tmp_path, resolver.local("base").ref)
    try:
        yield made
    finally:
        made.remove()


def test_without_a_registry_the_image_is_built_with_progress_lines(probe: Probe) -> None:
    built = probe.resolver().local(probe.name)
    assert built.ref == f"{images.LOCAL_REPO}/{probe.name}:{probe.content}"
    before, after = probe.lines
    assert before.startswith(
        f"building {built.ref} ({images.published_name(probe.name)} could not be pulled: "
    )
    assert after.startswith(f"built {built.ref} in ")
    assert after.endswith(" s")
    labels = probe.client.images.get(built.ref).labels
    assert (labels[images.CONTENT_LABEL], labels[images.VERSION_LABEL]) == (probe.content, __version__)
    assert probe.resolver().local(probe.name) == built and len(probe.lines) == 2  # present: no build


def test_the_released_image_of_this_content_and_version_is_used_without_building(probe: Probe) -> None:
    released = probe.publish_locally(probe.content)
    resolved = probe.resolver().local(probe.name)
    assert (resolved.ref, resolved.digest) == (f"{images.LOCAL_REPO}/{probe.name}:{probe.content}", released)
    assert probe.lines == []


def test_a_released_image_of_other_content_is_not_used(probe: Probe) -> None:
    stale = probe.publish_locally("0" * 16)
    resolved = probe.resolver().local(probe.name)
    assert resolved.digest != stale
    assert probe.lines[0].startswith(
        f"building {resolved.ref} ({images.published_name(probe.name)} was built from other"
    )


def test_the_progress_line_goes_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    images._report_on_stderr("built x (why) in 1.0 s")
    assert capfd.readouterr() == ("", "[keystone] built x (why) in 1.0 s\n")
