"""Wrap a provider's call method so each call records an `LlmCall`, transparently: the same return value
(a stream stays the provider's stream class and still streams), exceptions propagate unchanged.

A stream is observed by giving it a subclass of its own class that sees every item as the caller
iterates (`isinstance` checks keep holding); the call is recorded when the stream is exhausted, fails or
is closed.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._llm_call import LlmCall, mark_recording, recording, unmark_recording

log = logging.getLogger("polarity_keystone.sdk")

WRAPPED_MARK = "__keystone_llm_call__"


@dataclass(frozen=True)
class CallReader:
    """How one provider's responses read: the whole response, or one item of its stream."""

    provider: str
    read_response: Callable[[LlmCall, Any], None]
    read_item: Callable[[LlmCall, Any], None]
    stream_types: tuple[type, ...]


def instrument(function: Callable[..., Any], operation: str, reader: CallReader) -> Callable[..., Any]:
    """`function` recording one `llm_call` per call; `function` itself when it already does. An async
    client's method returns an awaitable: the call is then recorded when it is awaited."""
    if getattr(function, WRAPPED_MARK, False):
        return function

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        if recording():
            return function(*args, **kwargs)
        call = _start(operation, reader, kwargs)
        token = mark_recording()
        try:
            result = function(*args, **kwargs)
        except BaseException as error:
            call.finish(error)
            raise
        finally:
            unmark_recording(token)
        if inspect.isawaitable(result):
            return _await(call, reader, result)
        return _observe(call, reader, result)

    setattr(run, WRAPPED_MARK, True)
    return run


async def _await(call: LlmCall, reader: CallReader, pending: Awaitable[Any]) -> Any:
    token = mark_recording()
    try:
        result = await pending
    except BaseException as error:
        call.finish(error)
        raise
    finally:
        unmark_recording(token)
    return _observe(call, reader, result)


def _start(operation: str, reader: CallReader, kwargs: dict[str, Any]) -> LlmCall:
    model = kwargs.get("model")
    return LlmCall(reader.provider, operation, model=model if isinstance(model, str) else None)


def _observe(call: LlmCall, reader: CallReader, result: Any) -> Any:
    if isinstance(result, reader.stream_types):
        call.stream = True
        try:
            result.__class__ = _observed_class(type(result))
            result._keystone_watch = _Watch(call, reader.read_item)  # type: ignore[attr-defined]
        except Exception:
            log.warning("could not observe a stream of %s", call.operation, exc_info=True)
        return result
    _read(reader.read_response, call, result)
    call.finish()
    return result


def _read(read: Callable[[LlmCall, Any], None], call: LlmCall, value: Any) -> None:
    try:
        read(call, value)
    except Exception:  # an unexpected response shape must not reach the caller
        log.warning("could not read a response of %s", call.operation, exc_info=True)


@dataclass
class _Watch:
    call: LlmCall
    read_item: Callable[[LlmCall, Any], None]

    def see(self, item: Any) -> None:
        _read(self.read_item, self.call, item)


_observed_classes: dict[type, type] = {}


def _observed_class(stream_class: type) -> type:
    if getattr(stream_class, WRAPPED_MARK, False):
        return stream_class
    if stream_class not in _observed_classes:
        is_async = hasattr(stream_class, "__anext__")
        body = _async_stream_methods() if is_async else _sync_stream_methods()
        body[WRAPPED_MARK] = True
        _observed_classes[stream_class] = type(stream_class.__name__, (stream_class,), body)
    return _observed_classes[stream_class]


def _sync_stream_methods() -> dict[str, Any]:
    def __next__(self: Any) -> Any:
        watch: _Watch = self._keystone_watch
        try:
            item = super(type(self), self).__next__()
        except StopIteration:
            watch.call.finish()
            raise
        except BaseException as error:
            watch.call.finish(error)
            raise
        watch.see(item)
        return item

    def __iter__(self: Any) -> Iterator[Any]:
        watch: _Watch = self._keystone_watch
        try:
            for item in super(type(self), self).__iter__():
                watch.see(item)
                yield item
        except BaseException as error:
            if not isinstance(error, GeneratorExit):
                watch.call.finish(error)
            raise
        watch.call.finish()

    def close(self: Any) -> None:
        try:
            super(type(self), self).close()
        finally:
            self._keystone_watch.call.finish()

    return {"__next__": __next__, "__iter__": __iter__, "close": close}


def _async_stream_methods() -> dict[str, Any]:
    async def __anext__(self: Any) -> Any:
        watch: _Watch = self._keystone_watch
        try:
            item = await super(type(self), self).__anext__()
        except StopAsyncIteration:
            watch.call.finish()
            raise
        except BaseException as error:
            watch.call.finish(error)
            raise
        watch.see(item)
        return item

    async def __aiter__(self: Any) -> AsyncIterator[Any]:
        watch: _Watch = self._keystone_watch
        try:
            async for item in super(type(self), self).__aiter__():
                watch.see(item)
                yield item
        except BaseException as error:
            if not isinstance(error, GeneratorExit):
                watch.call.finish(error)
            raise
        watch.call.finish()

    async def close(self: Any) -> None:
        try:
            await super(type(self), self).close()
        finally:
            self._keystone_watch.call.finish()

    return {"__anext__": __anext__, "__aiter__": __aiter__, "close": close}
