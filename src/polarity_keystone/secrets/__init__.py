"""Secrets: where a spec's secret values come from (host sources, the operator's allow-list, values a
client sent) and the one redaction rule that keeps them out of every output. No Docker, no HTTP: the
gate and the SDK use it as well as the engine and the server."""

from ._redaction import Redactor, redact_all, redact_result
from ._resolve import generated, in_env, interpolate, resolve_fixed, secret_files
from ._sources import (
    LOCAL,
    SecretError,
    SecretPolicy,
    check_operator_secret,
    host_kind,
    parse_operator_secret,
    require_available,
)

__all__ = [
    "LOCAL",
    "Redactor",
    "SecretError",
    "SecretPolicy",
    "check_operator_secret",
    "generated",
    "host_kind",
    "in_env",
    "interpolate",
    "parse_operator_secret",
    "redact_all",
    "redact_result",
    "require_available",
    "resolve_fixed",
    "secret_files",
]
