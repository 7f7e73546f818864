"""Dependencies of the routes, as `Annotated` aliases: the server context and who is calling.

`Authenticated` checks the bearer key and takes a token from the caller's read or write bucket;
`LiveKey` also refuses sandbox tokens (403), and `SandboxScoped` lets a sandbox token through only
for the sandbox in the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ._context import ServerContext
from ._errors import Forbidden, InvalidRequest, RateLimited, Unauthorized
from ._events import last_event_id
from ._keys import hash_key
from ._models import unstorable_text


def storable_parameters(request: Request) -> None:
    """Path and query values the store could not keep (a NUL character) are a 400, never a 500."""
    values = [*request.path_params.values(), *request.query_params.values(), *request.query_params.keys()]
    reason = unstorable_text(values)
    if reason:
        raise InvalidRequest(f"a path or query parameter is invalid: {reason}")


def get_context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.keystone
    return context


Context = Annotated[ServerContext, Depends(get_context)]


@dataclass(frozen=True)
class Principal:
    id: str
    """The API key's id: owner of what it creates, and its rate-limit bucket."""
    kind: Literal["live", "sandbox", "local"]
    sandbox_id: str | None = None


LOCAL = Principal("local", "local")
"""The caller of an embedded server that runs without auth."""
READS = ("GET", "HEAD", "OPTIONS")

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="API key",
    description="`ks_live_...` API key, or the `ks_sb_...` token a sandbox's agent is given.",
)


def authenticate(
    request: Request,
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        if context.settings.auth_required:
            raise Unauthorized("missing Authorization: Bearer <api key> header")
        principal = LOCAL
    else:
        record = context.store.api_key_by_hash(hash_key(credentials.credentials))
        if record is None or record.revoked:
            raise Unauthorized("invalid or revoked API key")
        principal = Principal(record.id, record.kind, record.sandbox_id)
    kind = "read" if request.method in READS else "write"
    wait = context.limiter.acquire(principal.id, kind)
    if wait:
        raise RateLimited(f"{kind} rate limit exceeded for this key", retry_after=wait)
    return principal


Authenticated = Annotated[Principal, Depends(authenticate)]


def live_key(principal: Authenticated) -> Principal:
    if principal.kind == "sandbox":
        raise Forbidden("a sandbox token (ks_sb_) can only use the endpoints of its own sandbox")
    return principal


LiveKey = Annotated[Principal, Depends(live_key)]


def sandbox_scoped(sandbox_id: str, principal: Authenticated) -> Principal:
    if principal.kind == "sandbox" and principal.sandbox_id != sandbox_id:
        raise Forbidden(f"this sandbox token belongs to sandbox {principal.sandbox_id}, not {sandbox_id}")
    return principal


SandboxScoped = Annotated[Principal, Depends(sandbox_scoped)]


def _resume_after(
    header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    query: Annotated[int | None, Query(alias="last_event_id", ge=0, le=2**62)] = None,
) -> int:
    return last_event_id(header, query)


ResumeAfter = Annotated[int, Depends(_resume_after)]
"""The id of the last event a reconnecting stream client saw (0: from the start)."""
