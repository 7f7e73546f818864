"""Dependencies of the routes, as `Annotated` aliases: the server context and who is calling.

`Authenticated` is the caller `AuthenticationMiddleware` identified (and charged a token from its read
or write bucket) before the body was read; `LiveKey` also refuses sandbox tokens (403), and
`SandboxScoped` lets a sandbox token through only for the sandbox in the path.

The dependencies that do no I/O are `async`: FastAPI runs a plain `def` dependency in a worker thread, and
a thread hop per dependency per request cost more than all they do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..store import DEFAULT_PROJECT, ApiKeyRecord
from ._context import ServerContext
from ._errors import Forbidden, InvalidRequest, NotFoundError, RateLimited, Unauthorized
from ._events import last_event_id
from ._models import MAX_ID_LENGTH, unstorable_text


async def storable_parameters(request: Request) -> None:
    """Path and query values the store could not keep (a NUL character) are a 400, never a 500; an id in
    the path longer than any id can be names nothing (404), and is not echoed."""
    for name, value in request.path_params.items():
        if name.endswith("_id") and len(value) > MAX_ID_LENGTH:
            resource = name.removesuffix("_id")
            raise NotFoundError(
                f"no {resource} has an id of {len(value)} characters (ids are at most {MAX_ID_LENGTH})"
            )
    values = [*request.path_params.values(), *request.query_params.values(), *request.query_params.keys()]
    reason = unstorable_text(values)
    if reason:
        raise InvalidRequest(f"a path or query parameter is invalid: {reason}")


async def get_context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.keystone
    return context


Context = Annotated[ServerContext, Depends(get_context)]


@dataclass(frozen=True)
class Principal:
    id: str
    """The API key's id: owner of what it creates, and its rate-limit bucket."""
    kind: Literal["live", "sandbox", "local"]
    sandbox_id: str | None = None
    project_id: str = DEFAULT_PROJECT
    """What it sees: the resources of this project only."""
    admin: bool = False


LOCAL = Principal("local", "local", admin=True)
"""The caller of an embedded server that runs without auth: its operator, in its one project."""
READS = ("GET", "HEAD", "OPTIONS")

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="API key",
    description="`ks_live_...` API key, or the `ks_sb_...` token a sandbox's agent is given.",
)


def identify(context: ServerContext, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """Who sent the key (a store lookup); `Unauthorized` for a missing, unknown or revoked one."""
    if credentials is None:
        if context.settings.auth_required:
            raise Unauthorized("missing Authorization: Bearer <api key> header")
        return LOCAL
    record = context.known_keys.look_up(credentials.credentials)
    if record is None or record.revoked:
        raise Unauthorized("invalid or revoked API key")
    return principal_of(record)


def identify_remembered(
    context: ServerContext, credentials: HTTPAuthorizationCredentials | None
) -> Principal | None:
    """`identify` without I/O: the caller if its key was looked up a moment ago (see KnownKeys) or the
    server needs none, else None (then `identify` must ask the store, or refuse)."""
    if credentials is None:
        return None if context.settings.auth_required else LOCAL
    record = context.known_keys.remembered(credentials.credentials)
    return None if record is None else principal_of(record)


def principal_of(record: ApiKeyRecord) -> Principal:
    return Principal(record.id, record.kind, record.sandbox_id, record.project_id, record.admin)


def charge(context: ServerContext, principal: Principal, method: str) -> None:
    """Take one token from the caller's read or write bucket, and one from its project's; `RateLimited`
    when either is empty."""
    kind = "read" if method in READS else "write"
    wait = context.limiter.acquire(principal.id, kind)
    if wait:
        raise RateLimited(f"{kind} rate limit exceeded for this key", retry_after=wait)
    wait = context.project_limiter.acquire(principal.project_id, kind)
    if wait:
        raise RateLimited(f"{kind} rate limit exceeded for this key's project", retry_after=wait)


async def authenticate(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller `AuthenticationMiddleware` admitted; `_credentials` is declared so that the OpenAPI
    document names the bearer scheme on every route that needs a key."""
    principal: Principal = request.state.principal
    return principal


Authenticated = Annotated[Principal, Depends(authenticate)]


async def live_key(principal: Authenticated) -> Principal:
    if principal.kind == "sandbox":
        raise Forbidden("a sandbox token (ks_sb_) can only use the endpoints of its own sandbox")
    return principal


LiveKey = Annotated[Principal, Depends(live_key)]


async def admin_key(principal: Authenticated) -> Principal:
    if not principal.admin:
        raise Forbidden("this needs an admin key (`ks keys create NAME --admin` on the server's machine)")
    return principal


AdminKey = Annotated[Principal, Depends(admin_key)]
"""A key that may create projects and keys; the embedded server's local caller is one."""


def sandbox_scoped(sandbox_id: str, principal: Authenticated, context: Context) -> Principal:
    """A sandbox token passes for its own sandbox only (403 otherwise); a key for its project's
    sandboxes only (another project's answers 404, as an unknown one does)."""
    if principal.kind == "sandbox":
        if principal.sandbox_id != sandbox_id:
            raise Forbidden(f"this sandbox token belongs to sandbox {principal.sandbox_id}, not {sandbox_id}")
    else:
        context.sandbox(principal.project_id, sandbox_id)
    return principal


SandboxScoped = Annotated[Principal, Depends(sandbox_scoped)]


async def _resume_after(
    header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    query: Annotated[int | None, Query(alias="last_event_id", ge=0, le=2**62)] = None,
) -> int:
    return last_event_id(header, query)


ResumeAfter = Annotated[int, Depends(_resume_after)]
"""The id of the last event a reconnecting stream client saw (0: from the start)."""
