"""Bearer-token check for the admin plane (tokens compared in constant time, never logged)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

ADMIN_PREFIXES = ("/reelrank.admin.v1.", "/google.longrunning.Operations/")


def _deny(code: grpc.StatusCode, message: str) -> Any:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(handler)


class AdminAuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Requires `authorization: Bearer <token>` on admin methods; data-plane calls pass."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        if not details.method.startswith(ADMIN_PREFIXES):
            return continuation(details)
        if self._token is None:
            return _deny(
                grpc.StatusCode.PERMISSION_DENIED,
                "admin RPCs are disabled: start the server with REELRANK_ADMIN_TOKEN set",
            )
        header = dict(details.invocation_metadata or ()).get("authorization")
        if not header:
            return _deny(
                grpc.StatusCode.UNAUTHENTICATED, "missing 'authorization: Bearer <token>' metadata"
            )
        scheme, _, presented = str(header).partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return _deny(
                grpc.StatusCode.UNAUTHENTICATED, "authorization metadata must be 'Bearer <token>'"
            )
        if not hmac.compare_digest(presented.strip().encode(), self._token):
            return _deny(grpc.StatusCode.PERMISSION_DENIED, "admin token not accepted")
        return continuation(details)
