"""WrappedHandlers: one wrapper per method, never masking a different inner handler."""

from __future__ import annotations

from typing import Any

import grpc

from server.handler_cache import Unary, WrappedHandlers


def _handler(tag: str) -> Any:
    return grpc.unary_unary_rpc_method_handler(lambda req, ctx: f"{tag}:{req}")


def test_wraps_once_per_method_and_calls_through() -> None:
    built: list[str] = []

    def wrap(method: str, inner: Unary) -> Unary:
        built.append(method)
        return lambda req, ctx: "wrapped " + inner(req, ctx)

    cache = WrappedHandlers(wrap)
    a, b = _handler("a"), _handler("b")
    first = cache.get("/s/A", a)
    assert cache.get("/s/A", a) is first
    assert first.unary_unary("x", None) == "wrapped a:x"
    assert cache.get("/s/B", b).unary_unary("y", None) == "wrapped b:y"
    assert built == ["/s/A", "/s/B"]


def test_a_different_inner_handler_is_wrapped_not_masked() -> None:
    # An inner interceptor may answer one call with a handler of its own (a refusal).
    cache = WrappedHandlers(lambda method, inner: inner)
    normal, refusal = _handler("ok"), _handler("denied")
    assert cache.get("/s/A", normal).unary_unary("r", None) == "ok:r"
    assert cache.get("/s/A", refusal).unary_unary("r", None) == "denied:r"
    assert cache.get("/s/A", normal).unary_unary("r", None) == "ok:r"


def test_other_handler_kinds_pass_through() -> None:
    cache = WrappedHandlers(lambda method, inner: inner)
    stream = grpc.unary_stream_rpc_method_handler(lambda req, ctx: iter(()))
    assert cache.get("/s/S", stream) is stream
    assert cache.get("/s/N", None) is None
