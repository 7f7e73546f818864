"""Writing result files atomically, so a crash never leaves half a JSON document behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel


def dump_json(document: BaseModel | Sequence[BaseModel]) -> str:
    if not isinstance(document, BaseModel):
        return "[" + ",".join(item.model_dump_json(indent=2) for item in document) + "]"
    return document.model_dump_json(indent=2)


def write_json(path: Path, document: BaseModel | Sequence[BaseModel]) -> None:
    text = dump_json(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.replace(tmp, path)
