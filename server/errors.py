"""Domain errors and the one place that maps them to gRPC status codes.

Pipeline and index code raise these without knowing about gRPC; `ErrorMappingInterceptor`
turns them into a status code plus a `google.rpc.Status` with `ErrorInfo` details, and turns
anything unexpected into INTERNAL with a request id instead of leaking a traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.handler_cache import AsyncUnary, Unary, WrappedHandlers
from server.logs import REQUEST_ID

log = logging.getLogger(__name__)

ERROR_DOMAIN = "reelrank.dev"


class ReelrankError(Exception):
    """Base class: a failure the caller can act on. `reason` is a stable UPPER_SNAKE code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = {k: str(v) for k, v in metadata.items()}


class InvalidArgument(ReelrankError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"


class NotFound(ReelrankError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class FailedPrecondition(ReelrankError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Unavailable(ReelrankError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class Unauthenticated(ReelrankError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(ReelrankError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NoSnapshot(FailedPrecondition):
    """No snapshot is loaded yet: the server is up but cannot rank."""

    reason = "NO_SNAPSHOT"

    def __init__(self, snapshot_dir: str) -> None:
        super().__init__(
            f"no index snapshot is loaded (looked in {snapshot_dir!r}); build one with "
            "`reelrank build` or the admin RebuildIndex RPC",
            snapshot_dir=snapshot_dir,
        )


def _status_for(code: grpc.StatusCode, message: str, reason: str, meta: dict[str, str]) -> Any:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=meta)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = rpc_status.to_status(
        status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=[detail])
    )
    # The status replaces the trailers the observability interceptor set: carry the request id
    # over, so a failed call can be found in the server log like a successful one.
    rid = REQUEST_ID.get()
    if rid == "-":
        return status
    return status._replace(trailing_metadata=(*status.trailing_metadata, ("x-request-id", rid)))


def _internal_status(method: str) -> Any:
    """INTERNAL with a fresh incident id, logged with the traceback being handled."""
    incident = uuid.uuid4().hex[:12]
    log.exception("unhandled error in %s (incident %s)", method, incident)
    return _status_for(
        grpc.StatusCode.INTERNAL,
        f"internal error (incident {incident}); the server log has details",
        "INTERNAL",
        {"incident": incident},
    )


def _set_status(context: Any, status: Any) -> None:
    """What `abort_with_status` sends, for a sync handler under grpc.aio (where `abort` is a
    coroutine it cannot await): code, details and the `grpc-status-details-bin` trailer."""
    context.set_code(status.code)
    context.set_details(status.details)
    context.set_trailing_metadata(status.trailing_metadata)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every unary-unary handler so domain errors become the right status code.

    Coroutine handlers (the ranking RPCs, inline on the event loop) get a coroutine wrapper that
    aborts; sync handlers (the admin plane, in the migration thread pool) get a plain wrapper
    that sets the same status and returns no response.
    """

    def __init__(self) -> None:
        self._handlers = WrappedHandlers(self._wrap, self._wrap_async)

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any
    ) -> Any:
        handler = await continuation(handler_call_details)
        return self._handlers.get(handler_call_details.method, handler)

    @staticmethod
    def _wrap(method: str, inner: Unary) -> Unary:
        def wrapped(request: Any, context: Any) -> Any:
            try:
                return inner(request, context)
            except ReelrankError as exc:
                _set_status(context, _status_for(exc.code, exc.message, exc.reason, exc.metadata))
            except Exception:
                # The handler chose a status itself (`code` exists on a CodeTrackingContext).
                if getattr(context, "code", lambda: None)() is not None:
                    raise
                _set_status(context, _internal_status(method))
            return None

        return wrapped

    @staticmethod
    def _wrap_async(method: str, inner: AsyncUnary) -> AsyncUnary:
        async def wrapped(request: Any, context: Any) -> Any:
            try:
                return await inner(request, context)
            except ReelrankError as exc:
                await context.abort_with_status(
                    _status_for(exc.code, exc.message, exc.reason, exc.metadata)
                )
            except Exception:
                # context.abort raises to unwind; let that through untouched.
                if context.code() is not None:
                    raise
                await context.abort_with_status(_internal_status(method))

        return wrapped
