"""Seeds: every replica's seed derives from the experiment seed, so one number re-creates a run."""

from __future__ import annotations

import hashlib
import secrets

SEED_BITS = 63


def new_experiment_seed() -> int:
    return secrets.randbits(31)


def replica_seed(experiment_seed: int, scenario_id: str, replica: int) -> int:
    """A stable 63-bit seed per (experiment seed, scenario, replica)."""
    digest = hashlib.sha256(f"{experiment_seed}/{scenario_id}/{replica}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)
