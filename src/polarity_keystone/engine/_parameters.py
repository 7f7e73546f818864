"""A scenario's parameters as text: the environment variables an agent reads and the `--param k=v`
of a replay command. Nested values (a dataset record's objects and lists) are JSON; scalars stay as
they always were (`str`), so matrix cells read the same as before."""

from __future__ import annotations

import json
from typing import Any


def parameter_text(value: Any) -> str:
    if isinstance(value, dict | list) or value is None:
        return json.dumps(value, sort_keys=True)
    return str(value)


def parameters_text(parameters: dict[str, Any]) -> dict[str, str]:
    return {key: parameter_text(value) for key, value in parameters.items()}
