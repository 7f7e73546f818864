"""Writing result files atomically, so a crash never leaves half a JSON document behind."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._files import write_atomically

if TYPE_CHECKING:
    from pydantic import BaseModel


def dump_json(document: BaseModel | Sequence[BaseModel]) -> str:
    from pydantic import BaseModel  # late: the documents are models, so pydantic is loaded by now

    if not isinstance(document, BaseModel):
        return "[" + ",".join(item.model_dump_json(indent=2) for item in document) + "]"
    return document.model_dump_json(indent=2)


def write_json(path: Path, document: BaseModel | Sequence[BaseModel]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, (dump_json(document) + "\n").encode(), mode=0o600)
