"""What a spec asks of the engine's confinement (agent user, runtime, disk quota), settled at preparation.

A limit the engine cannot enforce is refused here, as a spec error naming the field, never ignored:
a run with `resources.disk: 100Mi` that could fill the host's disk would be worse than no run.
"""

from __future__ import annotations

from ..sandbox import (
    AgentUser,
    ImageResolver,
    ResolvedImage,
    UnknownUser,
    disk_quota_problem,
    runtime_problem,
)
from ..spec import LoadedSpec, SpecError, read_yaml


def confined_agent_image(
    loaded: LoadedSpec, resolver: ImageResolver, image: ResolvedImage
) -> tuple[ResolvedImage, AgentUser]:
    """The agent image with its user in place, and that user; raises SpecError for an unknown
    `agent.user`, a `resources.runtime` the engine does not have, or a `resources.disk` it cannot cap."""
    spec = loaded.spec
    try:
        image, user = resolver.for_agent(image, spec.agent.user)
    except UnknownUser as exc:
        raise _spec_error(loaded, ("agent", "user"), str(exc)) from None
    if spec.resources.runtime is not None:
        problem = runtime_problem(resolver.client, spec.resources.runtime)
        if problem is not None:
            raise _spec_error(loaded, ("resources", "runtime"), problem)
    if spec.resources.disk is not None:
        problem = disk_quota_problem(resolver.client, image.ref)
        if problem is not None:
            raise _spec_error(loaded, ("resources", "disk"), problem)
    return image, user


def _spec_error(loaded: LoadedSpec, path: tuple[str, ...], message: str) -> SpecError:
    file = str(loaded.path) if loaded.path is not None else "<spec>"
    _, source = read_yaml(loaded.text, file)
    return SpecError([source.issue(path, message)])
