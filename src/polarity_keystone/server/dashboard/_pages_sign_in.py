"""Signing in with an API key (a session cookie), and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .._deps import Context
from .._errors import RateLimited
from .._sessions import COOKIE, LIFETIME_S, SIGN_IN_PATH
from ._forms import check_origin, safe_next, session_form, text_field
from ._render import page

router = APIRouter(include_in_schema=False)


@router.get(SIGN_IN_PATH)
def sign_in_form(request: Request, context: Context, next: Annotated[str | None, Query()] = None) -> Response:
    if not context.settings.auth_required:
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, "sign_in.html", next=safe_next(next), problem=None)


@router.post(SIGN_IN_PATH)
async def sign_in(request: Request, context: Context) -> Response:
    check_origin(request)
    client = request.client.host if request.client else "unknown"
    if context.limiter.acquire(f"sign-in:{client}", "write"):
        raise RateLimited("too many sign-in attempts from this address: wait a few seconds", retry_after=1)
    form = await request.form(max_files=0, max_fields=20)
    key = text_field(form, "api_key").strip()
    target = safe_next(text_field(form, "next"))
    record = await run_in_threadpool(context.known_keys.look_up, key) if key else None
    if record is None or record.revoked or record.kind != "live":
        problem = "That key is unknown or revoked. Sign in with a project's ks_live_ key."
        return page(request, "sign_in.html", 401, next=target, problem=problem)
    cookie, _ = context.sessions.issue(record.key_hash)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=LIFETIME_S,
        path="/ui",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or (context.settings.public_url or "").startswith("https:"),
    )
    return response


@router.post("/ui/sign-out")
async def sign_out(request: Request, context: Context) -> Response:
    await session_form(request)
    response = RedirectResponse(SIGN_IN_PATH, status_code=303)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="lax")
    return response
