"""Service state before and after the agent ran (`audit.service_state`), and the difference.

A snapshot maps every item of a service to a fingerprint; each kind that Keystone can read takes its own
(`ServiceKind.snapshot`: Postgres rows, Redis keys, S3 objects), in one exec in the service container.
Large services are cut at `ITEM_LIMIT` items and the diff says so, rather than slowing every replica down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ITEM_LIMIT = 10_000
SHOWN_LIMIT = 50
"""Items of each kind (added, removed, changed) listed in the result; the counts are always complete."""


@dataclass
class ServiceSnapshot:
    items: dict[str, str] = field(default_factory=dict)
    """Item (a row, a key, an object) -> its fingerprint."""
    truncated: bool = False


def snapshot_diff(before: ServiceSnapshot, after: ServiceSnapshot) -> dict[str, Any]:
    """{"added": [...], "removed": [...], "changed": [...], "counts": {...}, "truncated": bool}; each item
    `{"item", "before"?, "after"?}`, at most SHOWN_LIMIT of each kind."""
    old, new = before.items, after.items
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(key for key in set(old) & set(new) if old[key] != new[key])
    return {
        "added": [{"item": key, "after": new[key]} for key in added[:SHOWN_LIMIT]],
        "removed": [{"item": key, "before": old[key]} for key in removed[:SHOWN_LIMIT]],
        "changed": [{"item": key, "before": old[key], "after": new[key]} for key in changed[:SHOWN_LIMIT]],
        "counts": {"added": len(added), "removed": len(removed), "changed": len(changed)},
        "truncated": before.truncated or after.truncated,
    }
