"""Interceptor plumbing: wrap a unary-unary handler once per method, not once per call.

grpc calls every interceptor's `intercept_service` for every RPC. Building a wrapper there (a
closure and a new `RpcMethodHandler`) costs microseconds on the hot path each time, while the
wrapper depends only on the method and the handler it wraps, both fixed after start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Unary = Callable[[Any, grpc.ServicerContext], Any]


class WrappedHandlers:
    """`wrap(method, behaviour)` applied to unary-unary handlers, remembered per method.

    Other handler kinds (and None) pass through unwrapped. A cached wrapper is reused only
    while the inner handler is the same object, so an interceptor that answers some calls
    with a handler of its own (a refusal) is never masked.
    """

    def __init__(self, wrap: Callable[[str, Unary], Unary]) -> None:
        self._wrap = wrap
        self._cache: dict[str, tuple[Any, Any]] = {}

    def get(self, method: str, handler: Any) -> Any:
        if handler is None or handler.unary_unary is None:
            return handler
        hit = self._cache.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._wrap(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._cache[method] = (handler, wrapped)  # a racing duplicate build is harmless
        return wrapped
