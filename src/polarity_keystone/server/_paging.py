"""How a listing answers: a bare JSON array, the way the hosted product's SDK presents `ks.specs.list()`,
`ks.experiments.list()` and `ks.sandboxes.list()  # list[Sandbox]`, so a client that iterates the body
works. `?limit=` sizes a page and `?cursor=` continues one; the next page's cursor travels in the
`X-Next-Cursor` header and in an RFC 8288 `Link: <...>; rel="next"` header, both absent on the last page.

Every list route answers through a `Pager`, except where the hosted product answers `{items, next_cursor}`
bodies (`items, next_cursor = ks.agents.list()`): the agents and an agent's versions take the `Pager`'s
`cursor` and `limit` and answer that object instead of a bare array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response

from ..store import Page, decode_cursor, encode_cursor
from ._deps import Context

T = TypeVar("T")
R = TypeVar("R")

NEXT_CURSOR = "X-Next-Cursor"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500

LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One page of the listing, as a JSON array.",
        "headers": {
            NEXT_CURSOR: {
                "description": "The `cursor` of the next page; absent on the last page.",
                "schema": {"type": "string"},
            },
            "Link": {
                "description": 'RFC 8288 `<url>; rel="next"`: the next page\'s URL; absent on the last page.',
                "schema": {"type": "string"},
            },
        },
    }
}
"""The documented 200 of a list route (merge with its error responses)."""


@dataclass(frozen=True)
class Pager:
    """A list request's `cursor` and `limit`, and the means to answer it."""

    cursor: str | None
    limit: int
    request: Request
    response: Response
    base_url: str
    """The server's public address, which the `Link` URL starts with."""

    def answer(self, page: Page[R], convert: Callable[[R], T]) -> list[T]:
        """The page's items, converted, as the body; the next-page headers when another page follows.
        The `Link` URL is this request's with `cursor` and `limit` set."""
        if page.next_cursor is not None:
            query = self.request.url.include_query_params(cursor=page.next_cursor, limit=self.limit).query
            self.response.headers[NEXT_CURSOR] = page.next_cursor
            self.response.headers["Link"] = f'<{self.base_url}{self.request.url.path}?{query}>; rel="next"'
        return [convert(item) for item in page.items]

    def slice(self, items: Sequence[R], listing: str, position: Callable[[R], tuple[str, str]]) -> Page[R]:
        """This page of `items` held in memory and sorted by `position` (a key unique to each item):
        the cursor is the last shown item's key, so items added or removed meanwhile never shift a page."""
        after = None
        if self.cursor is not None:
            first, second = decode_cursor(self.cursor, listing, 2)
            after = (str(first), str(second))
        rest = [item for item in items if after is None or position(item) > after]
        if len(rest) <= self.limit:
            return Page(rest, None)
        shown = rest[: self.limit]
        return Page(shown, encode_cursor(listing, list(position(shown[-1]))))


async def _pager(
    request: Request,
    response: Response,
    context: Context,
    cursor: Annotated[
        str | None, Query(description=f"Continue a listing: the previous page's `{NEXT_CURSOR}` header.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
) -> Pager:
    return Pager(cursor, limit, request, response, context.base_url(request))


Paging = Annotated[Pager, Depends(_pager)]
