"""In-memory long-running operations (AIP-151) and `google.longrunning.Operations` over them.

Operations do not survive a restart: after one, `GetOperation` on an old name answers
NOT_FOUND, and `GetIndexStatus` / `ListSnapshots` say what is serving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as ops_pb
from google.protobuf import empty_pb2

from server.errors import FailedPrecondition, InvalidArgument, NotFound

# Longest a single WaitOperation blocks when the request sets no timeout (clients loop).
DEFAULT_WAIT_S = 30.0
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

CancelFn = Callable[[], None]


class Operations(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    """Registry of operations plus the standard Operations service (get/list/wait/cancel/delete).

    Runners publish every state change with `put`; a runner that can be cancelled registers a
    callback with `on_cancel`. Waiters are woken on every `put`.
    """

    def __init__(self) -> None:
        self._ops: dict[str, ops_pb.Operation] = {}
        self._order: list[str] = []
        self._cancel: dict[str, CancelFn] = {}
        self._changed = threading.Condition()

    # ------------------------------------------------------------ registry

    def put(self, op: ops_pb.Operation) -> None:
        with self._changed:
            if op.name not in self._ops:
                self._order.append(op.name)
            stored = ops_pb.Operation()
            stored.CopyFrom(op)
            self._ops[op.name] = stored
            if op.done:
                self._cancel.pop(op.name, None)
            self._changed.notify_all()

    def on_cancel(self, name: str, fn: CancelFn) -> None:
        with self._changed:
            self._cancel[name] = fn

    def get(self, name: str) -> ops_pb.Operation:
        with self._changed:
            return self._copy(name)

    def _copy(self, name: str) -> ops_pb.Operation:
        op = self._ops.get(name)
        if op is None:
            raise NotFound(
                f"operation {name!r} not found (operations are kept in memory until restart)",
                operation=name,
            )
        out = ops_pb.Operation()
        out.CopyFrom(op)
        return out

    def running(self) -> str | None:
        with self._changed:
            return next((n for n in self._order if not self._ops[n].done), None)

    def wait(self, name: str, timeout: float) -> ops_pb.Operation:
        """The operation once done, or its latest state after `timeout` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._changed:
            while True:
                op = self._copy(name)
                remaining = deadline - time.monotonic()
                if op.done or remaining <= 0:
                    return op
                self._changed.wait(remaining)

    # ------------------------------------------------------------ google.longrunning.Operations

    def GetOperation(
        self, request: ops_pb.GetOperationRequest, context: grpc.ServicerContext
    ) -> ops_pb.Operation:
        return self.get(request.name)

    def ListOperations(
        self, request: ops_pb.ListOperationsRequest, context: grpc.ServicerContext
    ) -> ops_pb.ListOperationsResponse:
        """Newest first; `filter` may be empty, `done=true` or `done=false`."""
        flt = request.filter.replace(" ", "").lower()
        if flt not in ("", "done=true", "done=false"):
            raise InvalidArgument(
                f"unsupported filter {request.filter!r}: use '', 'done=true' or 'done=false'"
            )
        if request.page_size < 0:
            raise InvalidArgument("page_size must be >= 0")
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        try:
            start = int(request.page_token or 0)
        except ValueError:
            raise InvalidArgument(f"invalid page_token {request.page_token!r}") from None
        with self._changed:
            ops = [self._ops[n] for n in reversed(self._order)]
            if flt:
                want = flt == "done=true"
                ops = [op for op in ops if op.done == want]
            page = ops[start : start + size]
            resp = ops_pb.ListOperationsResponse(operations=page)
        if start + size < len(ops):
            resp.next_page_token = str(start + size)
        return resp

    def WaitOperation(
        self, request: ops_pb.WaitOperationRequest, context: grpc.ServicerContext
    ) -> ops_pb.Operation:
        """Block until done, `timeout` or shortly before the call's deadline, whichever first."""
        limit = DEFAULT_WAIT_S
        if request.HasField("timeout"):
            limit = request.timeout.ToTimedelta().total_seconds()
        remaining = context.time_remaining()
        if remaining is not None:
            limit = min(limit, max(0.0, remaining - 0.25))
        return self.wait(request.name, limit)

    def CancelOperation(
        self, request: ops_pb.CancelOperationRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        """Ask a running operation to stop; a no-op for one already done (AIP-151)."""
        with self._changed:
            op = self._copy(request.name)
            fn = self._cancel.get(request.name)
        if op.done:
            return empty_pb2.Empty()
        if fn is None:
            raise FailedPrecondition(
                f"operation {request.name} cannot be cancelled now", operation=request.name
            )
        fn()
        return empty_pb2.Empty()

    def DeleteOperation(
        self, request: ops_pb.DeleteOperationRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        """Forget a finished operation; a running one must be cancelled first."""
        with self._changed:
            op = self._copy(request.name)
            if not op.done:
                raise FailedPrecondition(
                    f"operation {request.name} is still running; cancel it first",
                    operation=request.name,
                )
            del self._ops[request.name]
            self._order.remove(request.name)
        return empty_pb2.Empty()
