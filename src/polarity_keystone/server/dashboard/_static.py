"""The dashboard's own and vendored scripts and styles, from the package: a fixed set, cached a day."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import Response

from .._errors import NotFoundError
from .._sessions import STATIC_PREFIX

router = APIRouter(include_in_schema=False)

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_FOLDER = files("polarity_keystone.server.dashboard") / "static"


def _assets() -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for prefix, folder in (("", _FOLDER), ("vendor/", _FOLDER / "vendor")):
        for entry in folder.iterdir():
            if entry.is_file() and _suffix(entry.name) in _TYPES:
                found[prefix + entry.name] = entry.read_bytes()
    return found


def _suffix(name: str) -> str:
    return name[name.rfind(".") :]


ASSETS = _assets()


@router.get(STATIC_PREFIX + "{name:path}")
def asset(name: str) -> Response:
    body = ASSETS.get(name)
    if body is None:
        raise NotFoundError(f"no dashboard asset {name!r}")
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return Response(body, media_type=_TYPES[_suffix(name)], headers=headers)
