"""The spec of a sandbox created from an image (`POST /v1/sandboxes` with `image` and `services`).

Such a sandbox boots exactly as a spec's does (same images, services, agent user, limits), so the
request becomes a small spec held in memory: the image as its base, each service kind under its own
name with the image Keystone runs it from, and no task for an agent (commands come through the API).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..spec import LoadedSpec, parse_spec
from ._models import ImageService

IMAGE_SPEC_ID = "image-sandbox"
"""The id of every such spec; the sandbox itself reports no spec."""

SERVICE_DECLARATIONS: dict[ImageService, dict[str, Any]] = {
    "postgres": {"image": "postgres:16"},
    "redis": {"image": "redis:7"},
    "s3": {"type": "s3"},
    "http_mock": {"type": "http_mock"},
}
"""Each kind's service: the canonical image (Keystone's local stand-in where it cannot be pulled)."""


def image_spec(image: str, services: Sequence[ImageService]) -> LoadedSpec:
    document = {
        "version": 1,
        "id": IMAGE_SPEC_ID,
        "base": image,
        "task": {"prompt": f"A sandbox of {image}: work in it through the API's commands and files."},
        "agent": {"type": "cli", "command": "true"},
        "services": [{"name": kind.replace("_", "-"), **SERVICE_DECLARATIONS[kind]} for kind in services],
        "invariants": {"booted": {"check": {"type": "command_exit", "command": "true"}}},
    }
    # JSON is YAML: the request is validated as any uploaded spec, refusing every local path.
    return parse_spec(json.dumps(document), "<sandbox request>", local_paths=False)
