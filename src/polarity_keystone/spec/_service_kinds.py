"""Which kind of service a spec's service declares: its `type`, or else what its image is known to run.

The kinds themselves (readiness, URLs, snapshots) are implemented in `services/`, registered under these
names; the spec only names them, so validation can tell an S3 service from a database without them.
"""

from __future__ import annotations

from ._models import Service

GENERIC = "generic"
KNOWN_IMAGES: dict[str, frozenset[str]] = {
    "postgres": frozenset({"postgres", "postgis", "pgvector"}),
    "redis": frozenset({"redis", "valkey", "redis-stack-server"}),
    "s3": frozenset({"minio", "localstack", "s3mock", "moto"}),
}
"""Kind -> image names (without registry, namespace or tag) that run it when `type` is not given."""


def service_kind(service: Service) -> str:
    """The service's `type` when given; else the kind its image runs; else `generic`."""
    if service.type:
        return service.type
    repository = (service.image or "").split("@")[0].rsplit(":", 1)[0]
    name = repository.rsplit("/", 1)[-1]
    return next((kind for kind, images in KNOWN_IMAGES.items() if name in images), GENERIC)
