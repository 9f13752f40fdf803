"""Client-side errors: every ``grpc.RpcError`` becomes a :class:`ReelrankError` here.

This module is the single conversion point between gRPC failures and the exceptions the
client library raises. The typed clients call :func:`from_rpc_error` (through
:func:`translate_rpc_errors`) and nothing else inspects ``grpc.RpcError`` objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc

__all__ = [
    "ReelrankError",
    "from_rpc_error",
    "from_status_proto",
    "status_code_from_int",
    "status_code_from_name",
    "translate_rpc_errors",
]

_CODES_BY_INT: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


class ReelrankError(Exception):
    """A failed reelrank call.

    Parameters
    ----------
    code : grpc.StatusCode
        The gRPC status code of the failure.
    details : str
        The human-readable message sent by the server (or made by the client).
    reason : str, optional
        ``google.rpc.ErrorInfo.reason`` when the server attached rich error details.
    metadata : dict of str to str, optional
        ``google.rpc.ErrorInfo.metadata`` when the server attached rich error details.

    Attributes
    ----------
    code : grpc.StatusCode
    details : str
    reason : str or None
    metadata : dict of str to str
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.reason = reason
        self.metadata = dict(metadata or {})

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the exception picklable (multiprocessing workers send errors to the parent).
        return (_rebuild, (self.code.name, self.details, self.reason, self.metadata))


def _rebuild(
    code_name: str, details: str, reason: str | None, metadata: dict[str, str]
) -> ReelrankError:
    return ReelrankError(
        status_code_from_name(code_name), details, reason=reason, metadata=metadata
    )


def status_code_from_int(value: int) -> grpc.StatusCode:
    """Map a numeric status code (as in ``google.rpc.Status.code``) to ``grpc.StatusCode``.

    Unknown numbers map to ``UNKNOWN``.
    """
    return _CODES_BY_INT.get(int(value), grpc.StatusCode.UNKNOWN)


def status_code_from_name(name: str) -> grpc.StatusCode:
    """Map a status code name such as ``"UNAVAILABLE"`` to ``grpc.StatusCode``."""
    try:
        return grpc.StatusCode[name.upper()]
    except KeyError:
        return grpc.StatusCode.UNKNOWN


def _error_info(error: grpc.RpcError) -> tuple[str | None, dict[str, str]]:
    """Extract ``google.rpc.ErrorInfo`` from the rich status, if the server sent one."""
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status
    except ImportError:  # pragma: no cover - grpcio-status is a declared dependency
        return None, {}
    try:
        status = rpc_status.from_call(error)
    except (ValueError, AttributeError, TypeError):
        return None, {}
    if status is None:
        return None, {}
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
            return info.reason or None, dict(info.metadata)
    return None, {}


def from_rpc_error(error: grpc.RpcError) -> ReelrankError:
    """Convert a gRPC failure (sync or asyncio) into a :class:`ReelrankError`.

    Parameters
    ----------
    error : grpc.RpcError
        The exception raised by a stub call. Both ``grpc.Call`` errors and
        ``grpc.aio.AioRpcError`` expose ``code()`` and ``details()``.

    Returns
    -------
    ReelrankError
        With the call's status code, details and, when present, ``ErrorInfo``.
    """
    code_fn = getattr(error, "code", None)
    details_fn = getattr(error, "details", None)
    code = code_fn() if callable(code_fn) else None
    details = details_fn() if callable(details_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    reason, metadata = _error_info(error)
    return ReelrankError(code, str(details or ""), reason=reason, metadata=metadata)


def from_status_proto(status: Any) -> ReelrankError:
    """Convert a ``google.rpc.Status`` message (for example ``Operation.error``).

    Parameters
    ----------
    status : google.rpc.status_pb2.Status
        The status message.

    Returns
    -------
    ReelrankError
    """
    from google.rpc import error_details_pb2

    reason: str | None = None
    metadata: dict[str, str] = {}
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
            reason, metadata = info.reason or None, dict(info.metadata)
            break
    return ReelrankError(
        status_code_from_int(status.code), str(status.message), reason=reason, metadata=metadata
    )


@contextmanager
def translate_rpc_errors() -> Iterator[None]:
    """Re-raise any ``grpc.RpcError`` raised in the block as a :class:`ReelrankError`.

    Examples
    --------
    >>> with translate_rpc_errors():  # doctest: +SKIP
    ...     stub.Rank(request)
    """
    try:
        yield
    except grpc.RpcError as error:
        raise from_rpc_error(error) from error
