"""Writing result files atomically, so a crash never leaves half a JSON document behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import BaseModel


def dump_json(document: BaseModel | list[BaseModel]) -> str:
    if isinstance(document, list):
        return "[" + ",".join(item.model_dump_json(indent=2) for item in document) + "]"
    return document.model_dump_json(indent=2)


def write_json(path: Path, document: BaseModel | list[BaseModel]) -> None:
    text = dump_json(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.replace(tmp, path)
