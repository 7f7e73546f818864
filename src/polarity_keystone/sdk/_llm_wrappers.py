"""Wrap a provider's call method so each call records an `LlmCall`, transparently: the same return value
(a stream stays the provider's stream class and still streams), exceptions propagate unchanged.

A stream is observed by giving it a subclass of its own class that sees every item as the caller
iterates (`isinstance` checks keep holding); the call is recorded when the stream is exhausted, fails or
is closed. A method that returns a context manager making the request on entering (Anthropic's
`messages.stream()`) gets its manager observed the same way: entering it observes the provider stream
inside, which the manager closes on leaving. A raw response (`with_raw_response`, how LangChain calls the
clients) is read through its `parse()`, which the client caches: the caller's own `parse()` then gets the
same, observed, object.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ._llm_call import LlmCall, mark_recording, recording, unmark_recording

log = logging.getLogger("polarity_keystone.sdk")

WRAPPED_MARK = "__keystone_llm_call__"
RETIRED_MARK = "__keystone_llm_call_retired__"
"""Set on an instrumented function `uninstrument` took back: copies of it bound before (a client's
`with_raw_response` keeps its resource's bound `create`) then call through without recording."""


def _itself(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class CallReader:
    """How one provider method's responses read: the whole response, or one item of its stream."""

    provider: str
    operation: str
    """The instrumented method, e.g. `openai.chat.completions.create`: the event's `tool`."""
    read_response: Callable[[LlmCall, Any], None]
    read_item: Callable[[LlmCall, Any], None]
    stream_types: tuple[type, ...]
    stream_managers: tuple[type, ...] = ()
    """Context managers the method returns, which make the request when entered."""
    managed_stream: Callable[[Any], Any] = _itself
    """The provider stream inside what entering a manager returns."""
    raw_responses: tuple[type, ...] = ()
    """What the method returns when called through `with_raw_response`: the response wraps the answer."""


def instrument(function: Callable[..., Any], reader: CallReader) -> Callable[..., Any]:
    """`function` recording one `llm_call` per call; `function` itself when it already does. An async
    client's method returns an awaitable: the call is then recorded when it is awaited."""
    if getattr(function, WRAPPED_MARK, False):
        return function

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        if recording() or getattr(run, RETIRED_MARK, False):
            return function(*args, **kwargs)
        watch = _Watch(_start(reader, kwargs), reader)
        token = mark_recording()
        try:
            with watch:
                result = function(*args, **kwargs)
        finally:
            unmark_recording(token)
        if inspect.isawaitable(result):
            return _await(watch, result)
        watch.observe(watch.content(result))
        return result

    setattr(run, WRAPPED_MARK, True)
    return run


async def _await(watch: _Watch, pending: Awaitable[Any]) -> Any:
    token = mark_recording()
    try:
        with watch:
            result = await pending
    finally:
        unmark_recording(token)
    content = watch.content(result)
    if inspect.isawaitable(content):  # an async client's raw response parses asynchronously
        content = await _settled(watch.call, content)
    watch.observe(content)
    return result


async def _settled(call: LlmCall, pending: Awaitable[Any]) -> Any:
    try:
        return await pending
    except Exception:  # the caller's own parse() will raise it
        log.warning("could not parse a raw response of %s", call.operation, exc_info=True)
        return None


def _start(reader: CallReader, kwargs: dict[str, Any]) -> LlmCall:
    model = kwargs.get("model")
    return LlmCall(reader.provider, reader.operation, model=model if isinstance(model, str) else None)


def _read(read: Callable[[LlmCall, Any], None], call: LlmCall, value: Any) -> None:
    try:
        read(call, value)
    except Exception:  # an unexpected response shape must not reach the caller
        log.warning("could not read a response of %s", call.operation, exc_info=True)


@dataclass
class _Watch:
    """One call under way. As a context manager around a step of it (the request, a stream's next item),
    it records the call when the step ends it: with the error it raised, or as done when it reports the
    end of a stream; a generator closed early records nothing (the stream's `close` does)."""

    call: LlmCall
    reader: CallReader

    def __enter__(self) -> _Watch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if isinstance(error, (StopIteration, StopAsyncIteration)):
            self.call.finish()
        elif error is not None and not isinstance(error, GeneratorExit):
            self.call.finish(error)

    def see(self, item: Any) -> None:
        _read(self.reader.read_item, self.call, item)

    def content(self, result: Any) -> Any:
        """The answer `result` holds: itself, or a raw response's parsed answer (an awaitable for an async
        client's), or None when it cannot be parsed."""
        if not isinstance(result, self.reader.raw_responses):
            return result
        raw: Any = result
        try:
            return raw.parse()
        except Exception:  # the caller's own parse() will raise it
            log.warning("could not parse a raw response of %s", self.call.operation, exc_info=True)
            return None

    def observe(self, result: Any) -> Any:
        """`result`, watched until its stream ends, or read and recorded when it is the whole answer."""
        if isinstance(result, self.reader.stream_types):
            self.call.stream = True
            return self._adopt(result, _observed_stream_class)
        if isinstance(result, self.reader.stream_managers):
            self.call.stream = True
            return self._adopt(result, _observed_manager_class)
        _read(self.reader.read_response, self.call, result)
        self.call.finish()
        return result

    def _adopt(self, value: Any, observed_class: Callable[[type], type]) -> Any:
        try:
            value.__class__ = observed_class(type(value))
            value._keystone_watch = self
        except Exception:
            log.warning("could not observe a stream of %s", self.call.operation, exc_info=True)
        return value


_observed_classes: dict[type, type] = {}


def _observed_subclass(base: type, methods: dict[str, Any]) -> type:
    """`base` with `methods` overriding its own, made once per class; `base` itself when it is one."""
    if getattr(base, WRAPPED_MARK, False):
        return base
    if base not in _observed_classes:
        _observed_classes[base] = type(base.__name__, (base,), {**methods, WRAPPED_MARK: True})
    return _observed_classes[base]


def _observed_stream_class(stream_class: type) -> type:
    """A stream iterates either way (litellm's, whose `__iter__` and `__aiter__` return itself), or one."""
    if hasattr(stream_class, "__next__") and hasattr(stream_class, "__anext__"):
        return _observed_subclass(stream_class, _EITHER_WAY_STREAM)
    is_async = hasattr(stream_class, "__anext__")
    return _observed_subclass(stream_class, _ASYNC_STREAM if is_async else _SYNC_STREAM)


def _observed_manager_class(manager_class: type) -> type:
    is_async = hasattr(manager_class, "__aenter__")
    return _observed_subclass(manager_class, _ASYNC_MANAGER if is_async else _SYNC_MANAGER)


def _stream_next(self: Any) -> Any:
    watch: _Watch = self._keystone_watch
    with watch:
        item = super(type(self), self).__next__()
    watch.see(item)
    return item


def _stream_iter(self: Any) -> Iterator[Any]:
    watch: _Watch = self._keystone_watch
    with watch:
        for item in super(type(self), self).__iter__():
            watch.see(item)
            yield item
    watch.call.finish()


def _stream_close(self: Any) -> None:
    try:
        super(type(self), self).close()
    finally:
        self._keystone_watch.call.finish()


async def _stream_anext(self: Any) -> Any:
    watch: _Watch = self._keystone_watch
    with watch:
        item = await super(type(self), self).__anext__()
    watch.see(item)
    return item


async def _stream_aiter(self: Any) -> AsyncIterator[Any]:
    watch: _Watch = self._keystone_watch
    with watch:
        async for item in super(type(self), self).__aiter__():
            watch.see(item)
            yield item
    watch.call.finish()


async def _stream_aclose(self: Any) -> None:
    try:
        await super(type(self), self).close()
    finally:
        self._keystone_watch.call.finish()


async def _stream_aclose_itself(self: Any) -> None:
    try:
        await super(type(self), self).aclose()
    finally:
        self._keystone_watch.call.finish()


def _manager_enter(self: Any) -> Any:
    watch: _Watch = self._keystone_watch
    with watch:
        entered = super(type(self), self).__enter__()
    watch.observe(watch.reader.managed_stream(entered))
    return entered


async def _manager_aenter(self: Any) -> Any:
    watch: _Watch = self._keystone_watch
    with watch:
        entered = await super(type(self), self).__aenter__()
    watch.observe(watch.reader.managed_stream(entered))
    return entered


_SYNC_STREAM = {"__next__": _stream_next, "__iter__": _stream_iter, "close": _stream_close}
_ASYNC_STREAM = {"__anext__": _stream_anext, "__aiter__": _stream_aiter, "close": _stream_aclose}
_EITHER_WAY_STREAM = {
    "__next__": _stream_next,
    "__anext__": _stream_anext,
    "close": _stream_close,
    "aclose": _stream_aclose_itself,
}
_SYNC_MANAGER = {"__enter__": _manager_enter}
_ASYNC_MANAGER = {"__aenter__": _manager_aenter}
