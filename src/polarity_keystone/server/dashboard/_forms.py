"""What a dashboard form must show before it changes anything: it came from one of this server's pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request

from .._errors import Forbidden, InvalidRequest
from .._sessions import DASHBOARD_PREFIX, Session

MAX_FIELD = 4096


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(request: Request) -> None:
    """The form's Origin (or, without one, its Referer) is this server's, as the request reached it or as
    its public URL names it; a form posted from another site is 403."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if not sent or sent == "null":
        raise Forbidden("a dashboard form must come from a dashboard page (no Origin or Referer was sent)")
    allowed = {origin_of(str(request.base_url))}
    public_url = request.app.state.keystone.settings.public_url
    if public_url:
        allowed.add(origin_of(public_url))
    if origin_of(sent) not in allowed:
        raise Forbidden(f"a dashboard form must come from a dashboard page, not from {origin_of(sent)}")


async def session_form(request: Request) -> FormData:
    """The posted form, once its origin and its session's CSRF token are checked."""
    check_origin(request)
    form = await request.form(max_files=0, max_fields=20)
    session: Session | None = getattr(request.state, "session", None)
    token = form.get("csrf_token")
    codec = request.app.state.keystone.sessions
    if session is not None and not (isinstance(token, str) and codec.csrf_matches(session, token)):
        raise Forbidden("the form's CSRF token is missing or belongs to another session: reload the page")
    return form


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > MAX_FIELD:
        raise InvalidRequest(f"{name} is longer than {MAX_FIELD} characters")
    return value


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path of this server, never another site."""
    default = f"{DASHBOARD_PREFIX}/experiments"
    if not target or not target.startswith(f"{DASHBOARD_PREFIX}/") or "\\" in target:
        return default
    parts = urlsplit(target)
    return default if parts.scheme or parts.netloc else target
