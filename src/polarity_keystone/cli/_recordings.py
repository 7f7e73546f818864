"""`ks replay --recording FILE`: the model calls a replica made, read from the results it left.

FILE is a run's results (`ks eval run -o`, `--json`, the server's experiment results) or one replica's
(`ks replay --json`); the replica is the one with the replayed seed and replica number. Only the shape
this needs is read, so results written by another version of Keystone serve as well.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDING_FILE_LIMIT = 512 * 1024 * 1024


class RecordingError(ValueError):
    """The file holds no recording of the replica; the CLI reports it as invalid input."""


def load_recordings(path: Path, *, seed: int, replica: int) -> dict[str, list[dict[str, Any]]]:
    try:
        if path.stat().st_size > RECORDING_FILE_LIMIT:
            raise RecordingError(
                f"{path} is over {RECORDING_FILE_LIMIT // 2**20} MiB; give one replica's results"
            )
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise RecordingError(f"{path} is not JSON: {exc}") from exc
    replicas = _replicas(document)
    if not replicas:
        raise RecordingError(
            f"{path} is neither a run's results nor a replica's (no `seed` and `recordings`)"
        )
    found = next((r for r in replicas if r.get("seed") == seed and r.get("replica") == replica), None)
    if found is None:
        seen = ", ".join(f"seed {r.get('seed')} replica {r.get('replica')}" for r in replicas[:10])
        raise RecordingError(f"{path} has no replica with seed {seed} and replica {replica} (it has: {seen})")
    recordings = found.get("recordings")
    if not isinstance(recordings, dict) or not any(
        isinstance(calls, list) and calls for calls in recordings.values()
    ):
        raise RecordingError(
            f"replica {replica} (seed {seed}) in {path} made no model calls through a `type: llm` service"
        )
    return {
        str(name): [call for call in calls if isinstance(call, dict)]
        for name, calls in recordings.items()
        if isinstance(calls, list)
    }


def _replicas(document: Any) -> list[dict[str, Any]]:
    """The replica objects of a run's results (`scenarios[].replicas[]`), or the one replica given."""
    if isinstance(document, dict) and isinstance(document.get("scenarios"), list):
        return [
            replica
            for scenario in document["scenarios"]
            if isinstance(scenario, dict) and isinstance(scenario.get("replicas"), list)
            for replica in scenario["replicas"]
            if isinstance(replica, dict)
        ]
    return [document] if isinstance(document, dict) and "seed" in document else []
