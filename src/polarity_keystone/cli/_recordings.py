"""`ks replay --recording FILE`: the model calls a replica made, read from the results it left.

FILE is a run's results (`ks eval run -o`, `--json`, the server's experiment results) or one replica's
(`ks replay --json`); the replica is the one with the replayed seed and replica number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..results import ReplicaResult, RunResults

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
    try:
        replicas = _replicas(document)
    except ValidationError as exc:
        raise RecordingError(
            f"{path} is neither a run's results nor a replica's: {exc.errors()[0]['msg']}"
        ) from exc
    found = next((r for r in replicas if r.seed == seed and r.replica == replica), None)
    if found is None:
        seen = ", ".join(f"seed {r.seed} replica {r.replica}" for r in replicas[:10]) or "none"
        raise RecordingError(f"{path} has no replica with seed {seed} and replica {replica} (it has: {seen})")
    if not any(found.recordings.values()):
        raise RecordingError(
            f"replica {replica} (seed {seed}) in {path} made no model calls through a `type: llm` service"
        )
    return found.recordings


def _replicas(document: Any) -> list[ReplicaResult]:
    if isinstance(document, dict) and "scenarios" in document:
        results = RunResults.model_validate(document)
        return [replica for scenario in results.scenarios for replica in scenario.replicas]
    return [ReplicaResult.model_validate(document)]
