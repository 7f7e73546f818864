"""`GET /v1/experiments/{id}` of a finished experiment read a moment ago, answered in front of FastAPI.

For such an experiment the route's answer is bytes already in memory (see
`EncodedResults.recent_document`), and FastAPI's routing and dependency resolution would cost more than
everything else the request does. `FinishedReadsMiddleware` sits inside authentication (the caller is
identified and charged its rate limit) and answers those requests itself, with the bytes the route would
send. Anything else goes on to the route, which answers it (and every error) as it always did: another path
or method, a query string, a sandbox token, an experiment of another project, or one not read a moment ago.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ._context import ServerContext
from ._deps import Principal

PREFIX = "/v1/experiments/"


class FinishedReadsMiddleware:
    def __init__(self, app: ASGIApp, context: ServerContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        document = self._remembered(scope) if scope["type"] == "http" else None
        if document is None:
            await self.app(scope, receive, send)
            return
        await Response(document, media_type="application/json")(scope, receive, send)

    def _remembered(self, scope: Scope) -> bytes | None:
        path: str = scope["path"]
        if scope["method"] != "GET" or scope["query_string"] or not path.startswith(PREFIX):
            return None
        experiment_id = path.removeprefix(PREFIX)
        principal: Principal | None = scope.get("state", {}).get("principal")
        if not experiment_id or "/" in experiment_id or principal is None or principal.kind == "sandbox":
            return None
        writes = self.context.store.experiment_writes(experiment_id)
        return self.context.encoded_results.recent_document(principal.project_id, experiment_id, writes)
