"""What a spec means, as hashes: its validated model in canonical JSON, so comments, key order, quoting
and formatting of the YAML do not count, while every value does. A value left at its default counts as
absent (written out or not, it is the same spec), so a key a later Keystone adds to the spec does not
change the hash of a spec that does not use it, and baselines survive the upgrade.

The whole model has one hash (`spec_semantic_sha256`); `spec_parts` hashes each invariant and forbidden
rule by name and every other top-level field by its key, so a comparison of two runs can say which of
them changed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._models import Spec

SEMANTIC_KEY = "spec_semantic_sha256"
PARTS_KEY = "spec_parts"
SEMANTIC_KEYS = (SEMANTIC_KEY, PARTS_KEY)
"""The run fingerprint's keys that `semantic_fingerprint` adds."""


def _sha256(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _meaning(spec: Spec) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def semantic_fingerprint(spec: Spec) -> dict[str, Any]:
    """`{spec_semantic_sha256: hex, spec_parts: {invariants: {name: hex}, forbidden: {rule: hex},
    sections: {field: hex}}}`; part hashes are shortened to 16 hex digits (they name what changed; the
    whole-model hash is the one that proves sameness). Forbidden rules left unset are absent."""
    model = _meaning(spec)
    invariants = model.pop("invariants", {})
    forbidden = model.pop("forbidden", {})
    return {
        SEMANTIC_KEY: _sha256(_meaning(spec)),
        PARTS_KEY: {
            "invariants": {name: _sha256(value)[:16] for name, value in invariants.items()},
            "forbidden": {rule: _sha256(value)[:16] for rule, value in forbidden.items()},
            "sections": {key: _sha256(value)[:16] for key, value in model.items()},
        },
    }
