"""Interceptor plumbing: wrap a unary-unary handler once per method, not once per call.

grpc calls every interceptor's `intercept_service` for every RPC. Building a wrapper there (a
closure and a new `RpcMethodHandler`) costs microseconds on the hot path each time, while the
wrapper depends only on the method and the handler it wraps, both fixed after start-up.

Under grpc.aio a handler is either a coroutine function (run inline on the event loop) or a
plain function (run in the server's migration thread pool); its wrapper must be the same kind,
or grpc would run it in the wrong place (or not await it).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Unary = Callable[[Any, Any], Any]
AsyncUnary = Callable[[Any, Any], Awaitable[Any]]


class WrappedHandlers:
    """`wrap(method, behaviour)` applied to unary-unary handlers, remembered per method.

    `wrap` wraps plain handlers and `wrap_async` coroutine handlers (without `wrap_async`, a
    coroutine handler passes through unwrapped). Other handler kinds (and None) pass through
    unwrapped. A cached wrapper is reused only while the inner handler is the same object, so
    an interceptor that answers some calls with a handler of its own (a refusal) is never
    masked.
    """

    def __init__(
        self,
        wrap: Callable[[str, Unary], Unary],
        wrap_async: Callable[[str, AsyncUnary], AsyncUnary] | None = None,
    ) -> None:
        self._wrap = wrap
        self._wrap_async = wrap_async
        self._cache: dict[str, tuple[Any, Any]] = {}

    def get(self, method: str, handler: Any) -> Any:
        if handler is None or handler.unary_unary is None:
            return handler
        hit = self._cache.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        inner = handler.unary_unary
        if inspect.iscoroutinefunction(inner):
            if self._wrap_async is None:
                return handler
            behaviour: Any = self._wrap_async(method, inner)
        else:
            behaviour = self._wrap(method, inner)
        wrapped = grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._cache[method] = (handler, wrapped)  # a racing duplicate build is harmless
        return wrapped


class CodeTrackingContext:
    """A sync handler's context under grpc.aio, plus the `code()` it lacks.

    grpc.aio hands sync handlers a context without `code()`, so an outer interceptor could not
    see the status an inner one set (a sync handler cannot abort: it sets the code and returns).
    This proxy remembers the code set through it; everything else goes to the real context.
    """

    __slots__ = ("_code", "_context")

    def __init__(self, context: Any) -> None:
        self._context = context
        self._code: grpc.StatusCode | None = None

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code
        self._context.set_code(code)

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)
